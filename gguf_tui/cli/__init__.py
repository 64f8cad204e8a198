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
# What a Unix tool killed by SIGPIPE reports (128 + 13): `gguf-tui ls | head` ends as `yes | head`.
EXIT_BROKEN_PIPE = 141

# HubError kinds that mean the user typed something that is not a REF (hub/errors.py).
_USAGE_KINDS = frozenset({"bad_ref"})
_GLOBAL_OPTIONS = frozenset({"--store", "--config", "--debug", "--local"})


class UsageError(Exception):
    """Bad arguments: exit 2 with the message. The one usage-error type of the command line."""


def is_usage_error(exc: BaseException) -> bool:
    """A usage error: our UsageError, or a catalog error whose `kind` says the REF was bad."""
    return isinstance(exc, UsageError) or getattr(exc, "kind", None) in _USAGE_KINDS


class CliParser(argparse.ArgumentParser):
    """argparse, but an unknown option is named before any "required: REF" complaint.

    Plain argparse checks required positionals first, so `pull --bogus` said "the following
    arguments are required: REF". A subcommand's parser gets its own argument list, so it can
    look for options it does not know before parsing.
    """

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and self._subparsers is None:
            unknown = self._first_unknown_option(list(args))
            if unknown is not None:
                hint = f"see '{self.prog} --help'"
                if unknown in _GLOBAL_OPTIONS:
                    hint = f"a global option goes before the command: gguf-tui {unknown} ..."
                self.error(f"unknown option {unknown} ({hint})")
        return super().parse_known_args(args, namespace)

    def _first_unknown_option(self, tokens: list[str]) -> str | None:
        options = self._option_string_actions
        skip_value = False
        for token in tokens:
            if skip_value:
                skip_value = False
                continue
            if token == "--":
                return None
            if not token.startswith("-") or token == "-":
                continue
            if self._negative_number_matcher.match(token):
                continue
            name, has_value = token.split("=", 1)[0], "=" in token
            if token.startswith("--"):
                matches = [o for o in options if o == name] or [
                    o for o in options if o.startswith("--") and o.startswith(name)
                ]
            else:
                name = token[:2]
                matches = [name] if name in options else []
            if not matches:
                return name
            action = options[matches[0]]
            takes_value = action.nargs != 0
            whole = token.startswith("--") or len(token) == 2  # not "-xVALUE"
            skip_value = takes_value and not has_value and whole
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="gguf-tui",
        description="Find, download, verify and prune GGUF models. Without a command: open the TUI.",
    )
    parser.add_argument("--version", action="version", version=f"gguf-tui {__version__}")
    parser.add_argument("--store", metavar="DIR", help="store root (env GGUF_TUI_STORE)")
    parser.add_argument("--config", metavar="FILE", help="config file (env GGUF_TUI_CONFIG)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--local", action="store_true",
        help="run downloads inside this process, not in the engine service (engine.mode: local)",
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_all(subparsers)
    return parser


def _implementation(target: str):
    """The command function named "module:function"."""
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def _run_tui(args: argparse.Namespace, config) -> int:
    from gguf_tui.tui.app import run_app

    return run_app(config, local=getattr(args, "local", None) or None)


def _store_origin(args: argparse.Namespace) -> str:
    if args.store:
        return "--store"
    if os.environ.get("GGUF_TUI_STORE"):
        return "GGUF_TUI_STORE"
    return "the config's 'store'"


def check_store(args: argparse.Namespace, config) -> None:
    """Refuse (UsageError) a store that is a file, or a missing one a reading command names.

    A command that only reads or deletes needs the store to exist: an explicit path that does
    not is a typo, not an empty store. The default store may be missing (nothing pulled yet);
    `pull`, `import` and the dashboard create it, but never over a file.
    """
    use = getattr(args, "store_use", "write")
    if use == "none":
        return
    root = config.store
    origin = _store_origin(args)
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise UsageError(f"the store {root} (from {origin}) is not a folder: name a folder")
        if use == "write" and config.store_shared:
            _prepare_shared(root)
        return
    if use == "read":
        from gguf_tui.config import Config

        if root != Config().store.absolute():
            raise UsageError(
                f"the store {root} (from {origin}) does not exist: check the path "
                "('gguf-tui pull' creates a new store)"
            )
        return
    ancestor = root.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"the store {root} (from {origin}) cannot be created: {ancestor} "
                         "is not a folder")
    if config.store_shared:
        _prepare_shared(root)


def _prepare_shared(root) -> None:
    """`store.shared: true`: make the root setgid and group-writable, or say why not."""
    from gguf_tui.store.shared_root import prepare_shared_root

    problem = prepare_shared_root(root)
    if problem:
        print(f"gguf-tui: warning: {problem}", file=sys.stderr)


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (`| head`): stop quietly, as Unix tools do.

    Pointing stdout at /dev/null keeps the interpreter's last flush from complaining again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, store=args.store)
    except ConfigError as exc:
        print(f"gguf-tui: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.local:
        config.engine.mode = "local"  # the option beats the config file, as every option does
    target = getattr(args, "func", None)
    try:
        check_store(args, config)
        func = _implementation(target) if target else _run_tui
        code = func(args, config)
        sys.stdout.flush()  # a closed pipe shows here, where it can still be handled
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except ConfigError as exc:  # a setting only a command can check (e.g. the TUI's ui.theme)
        print(f"gguf-tui: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gguf-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one clear line unless --debug
        if is_usage_error(exc):
            print(f"gguf-tui: {exc}", file=sys.stderr)
            return EXIT_USAGE
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
    except BrokenPipeError:
        code = _quiet_broken_pipe()
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
