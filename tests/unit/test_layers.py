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
