"""Keys (defaults, remapping, help, palette), themes (built-in, YAML, broken), layout sizes."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette

from gguf_tui.engine.api import JobState, PullOptions
from gguf_tui.tui import keys
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.screens.help import HelpScreen, help_entries
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.tui.theming import PACKAGED_THEMES_DIR, load_themes
from tests.helpers.fileserver import Behaviour
from tests.ui.conftest import wait_for

DESIGN_KEYS = {
    "next_pane": "tab", "prev_pane": "shift+tab", "search": "slash", "open": "enter",
    "download": "d", "pause": "space", "cancel": "c", "retry": "r", "move_up": "K",
    "move_down": "J", "delete": "D", "verify": "V", "prune": "p", "help": "question_mark",
    "quit": "q", "quit_pause": "Q", "restart_engine": "R", "command_palette": "ctrl+p",
    "fit_filter": "f", "ctx_cycle": "x",  # issue 13.4: the catalog's fit column
    "source_filter": "s", "rescan": "ctrl+r",  # issue 14: other tools' stores in the catalog
}  # fmt: skip


def test_default_keys_are_design_section_6():
    assert {spec.id: spec.key for spec in keys.KEYS} == DESIGN_KEYS


async def test_help_lists_every_key_and_escape_closes(config):
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        entries = {binding_id: shown for _, rows in help_entries(app, app.keymap) for shown, _, binding_id in rows}
        for spec in keys.KEYS:
            assert spec.id in entries
        assert entries["search"] == "/" and entries["help"] == "?" and entries["pause"] == "space"
        assert entries["move_up"] == "K" and entries["delete"] == "D" and entries["command_palette"] == "^p"
        screenshot = app.export_screenshot().replace("&#160;", " ")
        assert "command_palette" in screenshot and "Search the Hub" in screenshot
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_keymap_remaps_by_id(config, server, gguf_bytes):
    config.ui.keymap = {"pause": "x", "prune": "P"}
    server.add("/alpha.gguf", gguf_bytes, Behaviour(rate=256 * 1024))
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="engine")
        job_id = await app.engine.enqueue(server.url("/alpha.gguf"), PullOptions(name="alpha"))
        await wait_for(pilot, lambda: job_id in app.jobs and app.jobs[job_id].state == JobState.DOWNLOADING)
        await pilot.press("tab", "space")  # space no longer pauses
        await pilot.pause(0.2)
        assert app.jobs[job_id].state == JobState.DOWNLOADING
        await pilot.press("x")
        await wait_for(pilot, lambda: app.jobs[job_id].state == JobState.PAUSED, what="paused by x")
        await pilot.press("p")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, PruneScreen)
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune by P")
        await pilot.press("escape", "question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        entries = {binding_id: shown for _, rows in help_entries(app, app.keymap) for shown, _, binding_id in rows}
        assert entries["pause"] == "x" and entries["prune"] == "P"


async def test_command_palette_runs_main_actions(config):
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None, what="scan")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"prune the store")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune via palette")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for wanted in ("Search the Hub", "Download highlighted", "Pause / resume download", "Cancel download",
                       "Retry download", "Delete local model", "Prune the store", "Quit", "Theme",
                       "Quit and pause downloads", "Restart the engine"):
            assert wanted in titles


async def test_palette_help_names_the_keys_of_the_key_table_remaps_included(config):
    """A `ui.keymap` remap shows in the palette's help: its keys come from the key table."""
    config.ui.keymap = {"pause": "x", "prune": "P", "quit_pause": "ctrl+x", "search": "f"}
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        helps = {command.title: command.help for command in app.get_system_commands(app.screen)}
        assert helps["Pause / resume download"].endswith("(x)")
        assert helps["Prune the store"].endswith("(P)")
        assert helps["Search the Hub"].endswith("(f)")
        assert helps["Quit and pause downloads"].endswith("(^x)")
        assert helps["Quit"].endswith("(q)") and helps["Download highlighted"].endswith("(d)")
        assert not any("(space)" in text or "(/)" in text for text in helps.values())


async def test_layout_narrow_stacks_wide_side_by_side(config):
    """Issue 11.18: at 80x24 tab goes down the stacked panes, and a focused detail keeps the
    catalog in view; wide, the detail stands beside the catalog over a full-width queue."""
    app = GgufApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-narrow")
        queue, detail, catalog = (app.query_one(s) for s in ("#queue", "#detail", "#catalog"))
        assert queue.content_region.height >= 5  # at least five downloads visible
        assert catalog.region.y < queue.region.y < detail.region.y  # stacked in tab order
        assert catalog.region.width == 80 and queue.region.width == 80 and detail.region.width == 80
        short = detail.region.height
        await pilot.press("tab")  # catalog -> queue, the next pane down
        assert app.focused is queue
        await pilot.press("tab")  # -> detail, at the bottom
        assert app.focused is detail
        await pilot.pause()
        assert detail.region.height > short  # the detail grows when focused ...
        assert catalog.display and catalog.region.height >= 4  # ... and the catalog stays in view
        assert queue.content_region.height >= 5
        await pilot.press("tab")  # -> catalog again
        await pilot.pause()
        assert app.focused is catalog and catalog.display
        await pilot.press("shift+tab")
        assert app.focused is detail
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert app.screen.has_class("-wide")
        assert detail.region.x > catalog.region.x and detail.region.y == catalog.region.y
        assert detail.region.bottom == catalog.region.bottom  # no gap above the queue
        assert queue.region.y == detail.region.bottom and queue.region.width == 120
        assert queue.content_region.height >= 5


def test_builtin_and_packaged_themes_load():
    loaded = load_themes()
    names = {theme.name for theme in loaded.themes}
    assert {"gguf-dark", "gguf-light", "gguf-amber", "gguf-contrast"} <= names
    assert loaded.problems == []
    assert (PACKAGED_THEMES_DIR / "gguf-amber.yaml").is_file()


async def test_theme_choice_yaml_and_broken_file(config, tmp_path: Path, monkeypatch):
    user_themes = tmp_path / "home" / ".config" / "gguf-tui" / "themes"
    user_themes.mkdir(parents=True)
    (user_themes / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    (user_themes / "mine.yaml").write_text(
        "name: mine\nprimary: '#123456'\ndark: false\nvariables:\n  download-active: '#00ff00'\n"
    )
    config.ui.theme = "mine"
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "mine"
        assert any("broken.yaml" in n.message and "primary" in n.message for n in app._notifications)
        assert app.style_for("download-active").color.triplet.hex == "#00ff00"
        assert app.style_for("download-paused").color is not None  # default from the app
    config.ui.theme = "broken"  # chosen, but its file is broken: reported, the default is used
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "gguf-dark"
        assert any("'broken' is in a broken file" in n.message for n in app._notifications)
    config.ui.theme = "gguf-light"
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "gguf-light" and not app.current_theme.dark


async def test_no_color_is_respected(config, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.no_color
        assert any(type(f).__name__ in ("Monochrome", "NoColor") for f in app.get_line_filters())


def test_theme_files_are_package_data():
    """An installed copy finds the YAML themes: tui/themes links to themes/ and is package data."""
    import tomllib

    from tests.conftest import REPO_ROOT

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gguf_tui"]
    assert "tui/themes/*.yaml" in patterns and "tui/*.tcss" in patterns
    packaged = sorted(p.name for p in (REPO_ROOT / "gguf_tui" / "tui").glob("themes/*.yaml"))
    assert packaged == sorted(p.name for p in (REPO_ROOT / "themes").glob("*.yaml"))
