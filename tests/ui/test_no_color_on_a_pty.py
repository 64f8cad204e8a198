"""`NO_COLOR=1` turns colour off entirely (issue 11.15): the real program on a real pty writes
no colour SGR sequence at all, and keeps the focus and the cursor visible without colour."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.ui.test_signals_on_a_pty import Terminal

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")

SGR = re.compile(rb"\x1b\[([0-9;:]*)m")


def colour_parameters(output: bytes) -> list[str]:
    """Every SGR parameter that sets a colour: 30-37, 40-47, 90-97, 100-107, 38;..., 48;..."""
    found = []
    for match in SGR.finditer(output):
        params = match.group(1).decode().replace(":", ";").split(";")
        index = 0
        while index < len(params):
            value = params[index]
            if value in ("38", "48", "58"):
                found.append(";".join(params[index:index + 3]))
                index += 5 if params[index + 1:index + 2] == ["2"] else 3
                continue
            if value.isdigit() and (30 <= int(value) <= 37 or 40 <= int(value) <= 47
                                    or 90 <= int(value) <= 97 or 100 <= int(value) <= 107):
                found.append(value)
            index += 1
    return found


def test_colour_parameters_finds_every_kind():
    sample = b"\x1b[38;5;245m a \x1b[1;48;2;1;2;3m b \x1b[31m c \x1b[0;39;49;1m d \x1b[7m"
    assert colour_parameters(sample) == ["38;5;245", "48;2;1", "31"]


@pytest.mark.parametrize("term", ["xterm-256color", "tmux-256color"])
async def test_no_color_writes_no_colour(term: str, tmp_path: Path):
    env = dict(os.environ, TERM=term, NO_COLOR="1", PYTHONPATH=str(REPO_ROOT), COLORTERM="truecolor")
    argv = [sys.executable, "-m", "gguf_tui", "--store", str(tmp_path / "store")]
    terminal = Terminal(argv, env)
    try:
        await terminal.wait_for_text(b"Catalog")
        await terminal.wait_for_text(b"Local models")
        await terminal.keys(b"\t", b"\t")  # focus moves: the borders change, still no colour
        code = await terminal.quit()
        terminal.read_some()
    finally:
        terminal.close()
    assert code == 0
    assert b"Catalog" in terminal.seen
    assert colour_parameters(terminal.seen) == []


async def test_no_color_shows_focus_by_shape(config, monkeypatch):
    from gguf_tui.tui.app import GgufApp

    monkeypatch.setenv("NO_COLOR", "1")
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        catalog, queue = app.query_one("#catalog"), app.query_one("#queue")
        assert app.focused is catalog
        assert catalog.styles.border_top[0] == "heavy" and queue.styles.border_top[0] == "round"
        await pilot.press("tab")
        await pilot.pause()
        assert catalog.styles.border_top[0] == "round" and queue.styles.border_top[0] == "heavy"
