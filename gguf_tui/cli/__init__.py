"""Command line: argument parsing, exit codes, headless progress.

The argument table is `gguf_tui.cli.commands`; each parser's `func` names its implementation
("module:function", a callable `(args, config) -> int` returning the exit code), imported only
when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gguf_tui import __version__
from gguf_tui.cli.commands import register_all
from gguf_tui.config import ConfigError, load_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gguf-tui",
        description="Find, download, verify and prune GGUF models. Without a command: open the TUI.",
    )
    parser.add_argument("--version", action="version", version=f"gguf-tui {__version__}")
    parser.add_argument("--store", metavar="DIR", help="store root (env GGUF_TUI_STORE)")
    parser.add_argument("--config", metavar="FILE", help="config file (env GGUF_TUI_CONFIG)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_all(subparsers)
    return parser


def _implementation(target: str):
    """The command function named "module:function"."""
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def _run_tui(args: argparse.Namespace, config) -> int:
    from gguf_tui.tui.app import run_app

    return run_app(config)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, store=args.store)
    except ConfigError as exc:
        print(f"gguf-tui: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    target = getattr(args, "func", None)
    try:
        func = _implementation(target) if target else _run_tui
        return func(args, config)
    except UsageError as exc:
        print(f"gguf-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # a setting only a command can check (e.g. the TUI's ui.theme)
        print(f"gguf-tui: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gguf-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one clear line unless --debug
        if args.debug:
            raise
        print(f"gguf-tui: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def entry() -> None:
    """The `gguf-tui` program: run, flush the output, and leave.

    Leaving with `os._exit` skips the interpreter's teardown of every loaded module (about
    50 ms with aiohttp loaded). Nothing is lost by it: by the time `main` returns, downloads are
    placed and fsynced, state files written, and worker threads idle; only stdout and stderr can
    still hold text, and they are flushed here first.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # a closed or broken stream: let the normal exit deal with it
    os._exit(code)
