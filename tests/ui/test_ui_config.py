"""`ui.keymap` and `ui.theme` are checked before the dashboard opens (issue 11.10), and a theme
chosen in the palette is remembered outside the config file (issue 11.19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual.command import CommandPalette

from gguf_tui.config import ConfigError, load_config
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.uisetup import ui_setup
from gguf_tui.tui.uistate import ui_state_path
from tests.conftest import REPO_ROOT, TEST_CONFIG
from tests.ui.conftest import wait_for


def write_config(tmp_path: Path, store: Path, ui: str) -> Path:
    path = tmp_path / "ui-config.yaml"
    path.write_text(TEST_CONFIG.format(store=store) + "ui:\n" + ui)
    return path


def run_dashboard(config_path: Path) -> subprocess.CompletedProcess[str]:
    """`gguf-tui` as a user starts it; a config error must end it before the dashboard opens."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TERM="dumb")
    return subprocess.run(
        [sys.executable, "-m", "gguf_tui", "--config", str(config_path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=30,
    )


@pytest.mark.parametrize(
    ("ui", "complaints"),
    [
        ("  keymap: {puase: x}\n", ["'ui.keymap'", "unknown key id 'puase'", "did you mean 'pause'"]),
        ("  theme: gguf-ligth\n", ["'ui.theme'", "no theme named 'gguf-ligth'", "did you mean 'gguf-light'"]),
        ("  theme: ~/themes/mine.yaml\n", ["'ui.theme'", "no such theme file"]),
        ("  theme_dirs: [/nonexistent/themes]\n", ["'ui.theme_dirs'", "no such folder"]),
    ],
)
def test_unknown_ui_settings_are_config_errors(tmp_path, store, ui, complaints):
    config_path = write_config(tmp_path, store, ui)
    result = run_dashboard(config_path)
    assert result.returncode == 2, result.stderr[-500:]
    line = result.stderr.strip()
    assert line.startswith("gguf-tui: config error: ") and str(config_path) in line
    for complaint in complaints:
        assert complaint in line
    assert "Traceback" not in result.stderr and len(line.splitlines()) == 1


def test_ui_setup_needs_no_running_app(tmp_path, store):
    config = load_config(write_config(tmp_path, store, "  keymap: {pause: x}\n  theme: nord\n"))
    setup = ui_setup(config)
    assert setup.keymap == {"pause": "x"} and setup.theme == "nord" and setup.theme_from_config
    config.ui.keymap = {"bogus": "z"}
    with pytest.raises(ConfigError, match="unknown key id 'bogus'"):
        GgufApp(config)


async def test_theme_file_path_in_config(tmp_path, store):
    theme_file = tmp_path / "mine.yaml"
    theme_file.write_text("name: mine-by-path\nprimary: '#336699'\ndark: false\n")
    config = load_config(write_config(tmp_path, store, "  theme: ./mine.yaml\n"))  # next to the config
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "mine-by-path"


async def choose_theme_in_palette(pilot, name: str) -> None:
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
    await pilot.press(*"theme")
    await pilot.pause(0.3)
    await pilot.press("enter")  # the Theme command opens a list of themes
    await pilot.pause(0.3)
    await pilot.press(*name)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.theme == name, what=f"theme {name}")


async def test_palette_theme_is_remembered_not_written_to_config(tmp_path, store, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config_path = write_config(tmp_path, store, "  mouse: true\n")
    before = config_path.read_bytes()
    app = GgufApp(load_config(config_path))
    async with app.run_test() as pilot:
        assert app.theme == "gguf-dark"
        await choose_theme_in_palette(pilot, "gguf-light")
    assert json.loads(ui_state_path().read_text())["theme"] == "gguf-light"
    assert ui_state_path().is_relative_to(tmp_path / "state" / "gguf-tui")
    assert config_path.read_bytes() == before  # the user's file is never rewritten
    app = GgufApp(load_config(config_path))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "gguf-light"  # remembered


async def test_config_theme_wins_at_start_and_says_so(tmp_path, store, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config_path = write_config(tmp_path, store, "  theme: gguf-amber\n")
    app = GgufApp(load_config(config_path))
    async with app.run_test() as pilot:
        assert app.theme == "gguf-amber"
        await choose_theme_in_palette(pilot, "gguf-light")
        await pilot.pause()
        assert any("for this session" in n.message and "gguf-amber" in n.message for n in app._notifications)
    app = GgufApp(load_config(config_path))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "gguf-amber"


def test_a_remembered_theme_that_is_gone_falls_back(tmp_path, store, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ui_state_path().parent.mkdir(parents=True)
    ui_state_path().write_text(json.dumps({"theme": "deleted-theme"}))
    config = load_config(write_config(tmp_path, store, "  mouse: true\n"))
    assert ui_setup(config).theme == "gguf-dark"
