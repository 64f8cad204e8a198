"""Command line: argument parsing, exit codes, headless progress.

Each subcommand lives in its own module with `register(subparsers)`; the module sets
`func=` on its parser to a callable `(args, config) -> int` (exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gguf_tui import __version__
from gguf_tui.config import ConfigError, load_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Modules that register subcommands, in help order.
_COMMAND_MODULES = [
    "gguf_tui.cli.pull",
    "gguf_tui.cli.store_cmds",
    "gguf_tui.cli.hub_cmds",
]


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
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


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
    func = getattr(args, "func", None) or _run_tui
    try:
        return func(args, config)
    except UsageError as exc:
        print(f"gguf-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gguf-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one clear line unless --debug
        if args.debug:
            raise
        print(f"gguf-tui: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
