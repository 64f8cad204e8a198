"""Dashboard polish (issue 11, items 14-19): one count of active downloads, pane order and keys
at 80x24, remembered themes, humanised dates."""

from __future__ import annotations

import dataclasses

from gguf_tui.engine.spec import JobState
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.statusbar import StatusBar
from tests.snapshots.fakes import NOW, FakeEngine, FakeHub, FakeStore, demo_jobs
from tests.ui.conftest import wait_for


def fake_app(config, jobs=None) -> GgufApp:
    return GgufApp(config, engine=FakeEngine(jobs), hub=FakeHub(), store=FakeStore(), clock=lambda: NOW)


async def ready(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app._engine_ready and app.snapshot is not None, what="ready")
    await pilot.pause()


def with_elsewhere() -> list:
    """The demo queue plus a download another process runs on the same store."""
    jobs = demo_jobs()
    other = dataclasses.replace(jobs[3], id=5, state=JobState.ELSEWHERE, bytes_done=1_000_000_000)
    return [*jobs, other]


async def test_status_bar_and_queue_count_active_alike(config):
    """Issue 11.17: the status bar said '0 active' while the queue said '1 active'."""
    app = fake_app(config, with_elsewhere())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        status = app.query_one(StatusBar).render().plain
        subtitle = str(app.query_one("#queue").border_subtitle)
        # downloading + retrying are this process's active work; the other process's is elsewhere
        assert "2 active" in status and "1 elsewhere" in status
        assert subtitle.startswith("2 active · 1 elsewhere · 1 queued · 1 paused")


async def test_home_and_end_jump_in_the_queue_and_catalog(config):
    """Issue 11.18: Home/End did nothing in the queue (DataTable binds them to sideways scroll)."""
    app = fake_app(config)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("tab")
        queue = app.query_one("#queue")
        assert app.focused is queue and queue.current_job_id == 1
        await pilot.press("end")
        assert queue.current_job_id == 4
        await pilot.press("home")
        assert queue.current_job_id == 1
        await pilot.press("shift+tab", "end")
        catalog = app.query_one("#catalog")
        assert app.focused is catalog and catalog.cursor_row == catalog.row_count - 1
        await pilot.press("home")
        assert catalog.cursor_row == 0


async def test_focused_detail_keeps_the_highlighted_catalog_row_in_view(config):
    """Issue 11.18: at 80x24 focusing the detail hid the catalog it describes."""
    app = fake_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("end")  # the last local model
        catalog = app.query_one("#catalog")
        highlighted = catalog.cursor_row
        await pilot.press("tab", "tab")
        assert app.focused is app.query_one("#detail")
        await pilot.pause()
        await pilot.pause()
        top = round(catalog.scroll_y)
        assert catalog.display and top <= highlighted < top + catalog.content_region.height


async def test_repo_updated_time_is_humanised(config, monkeypatch):
    """Issue 11.19: 'updated' showed the Hub's raw ISO timestamp."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    app = fake_app(config)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("slash", *"qwen3", "enter")
        await wait_for(pilot, lambda: app.search is not None and app.search.results, what="search")
        await pilot.pause()
        catalog = app.query_one("#catalog")
        assert catalog.current.key == "repo:bartowski/Qwen3-8B-GGUF"
        shown = app.query_one("#detail").shown.plain
        assert "updated 3 d ago (2026-09-18)" in " ".join(shown.split())
        assert "T07:00" not in shown
    monkeypatch.delenv("TZ")
    time.tzset()


def test_every_theme_draws_borders_unlike_its_background_in_256_colours(config):
    """Issue 11.16: gguf-light in a 256-colour tmux drew unfocused borders in the background colour."""
    from textual.color import Color

    from gguf_tui.tui.theming import palette_index

    app = fake_app(config)
    checked = []
    for name in sorted(app.available_themes):
        app.theme = name
        theme = app.current_theme
        variables = app.get_css_variables()
        background = Color.parse(variables["background"])
        if background.ansi is not None:
            continue  # the terminal's own palette: its colours are the terminal's business
        for variable in ("pane-border", "primary"):  # unfocused and focused borders
            border = Color.parse(variables[variable])
            assert palette_index(border) != palette_index(background), (name, variable, border.hex, background.hex)
        checked.append((name, theme.dark))
    assert ("gguf-light", False) in checked and ("gguf-dark", True) in checked and len(checked) > 15


async def test_unfocused_border_on_screen_differs_from_background_in_gguf_light(config):
    from gguf_tui.tui.theming import palette_index

    config.ui.theme = "gguf-light"
    app = fake_app(config)
    async with app.run_test() as pilot:
        await ready(pilot)
        queue = app.query_one("#queue")
        assert app.focused is not queue
        border_colour = queue.styles.border_top[1]
        assert palette_index(border_colour) != palette_index(queue.styles.background)


async def test_cursor_stays_on_its_row_when_the_width_changes(config):
    """Rebuilding the columns for a new width used to put both lists back on their first row."""
    app = fake_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        catalog, queue = app.query_one("#catalog"), app.query_one("#queue")
        await pilot.press("end", "tab", "end")
        key, job = catalog.current.key, queue.current_job_id
        assert job == 4 and key.startswith("unmanaged:")
        await pilot.resize_terminal(110, 40)
        await pilot.pause()
        await pilot.resize_terminal(90, 30)
        await pilot.pause()
        assert catalog.current.key == key and queue.current_job_id == job
