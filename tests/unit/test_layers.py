"""Nothing below tui/ imports textual (DESIGN.md section 2): checked in fresh interpreters."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import gguf_tui


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(gguf_tui.__path__, "gguf_tui."):
        if info.name.startswith("gguf_tui.tui") or info.name == "gguf_tui.__main__":
            continue
        names.append(info.name)
    return names


def test_no_textual_below_tui():
    modules = _modules()
    assert "gguf_tui.engine.queue" in modules and "gguf_tui.cli.pull" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'textual' not in sys.modules, name\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_store_commands_do_not_load_the_download_engine(tmp_path):
    """`ls`, `--help` and the like start fast: the argument table imports no aiohttp."""
    code = (
        "import sys\n"
        "from gguf_tui.cli import main\n"
        f"rc = main(['--store', {str(tmp_path / 'store')!r}, 'ls'])\n"
        "assert rc == 0, rc\n"
        "heavy = sorted(m for m in ('aiohttp', 'gguf_tui.engine.fetch', 'gguf_tui.hub.client')"
        " if m in sys.modules)\n"
        "print('loaded:', heavy)\n"
    )
    (tmp_path / "store").mkdir()  # `ls` of a named store that does not exist is an error
    env_config = tmp_path / "none.yaml"
    env_config.write_text("{}\n")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"GGUF_TUI_CONFIG": str(env_config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout


def test_every_command_names_an_implementation_that_exists():
    import argparse
    import importlib

    from gguf_tui.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"pull", "status", "ls", "info", "verify", "rm", "prune", "import", "path",
            "search", "files"} <= set(subparsers.choices)  # fmt: skip
    for name, sub in subparsers.choices.items():
        module_name, _, function = sub.get_default("func").partition(":")
        assert callable(getattr(importlib.import_module(module_name), function)), name


def test_downloads_use_the_copy_free_response_parser():
    """gguf_tui selects aiohttp's pure-Python response parser, which passes body chunks through
    without copying them (the C parser copies each one)."""
    code = (
        "import os\n"
        "os.environ.pop('AIOHTTP_NO_EXTENSIONS', None)\n"
        "import gguf_tui.engine\n"
        "import aiohttp.client_proto as proto\n"
        "print(proto.HttpResponseParser.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "aiohttp.http_parser"
