"""A store shared with another process, a queue that does not fit, and errors that must not crash."""

from __future__ import annotations

from rich.style import Style

from gguf_tui.engine.api import JobState
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.statusbar import StoreStatus, status_text
from tests.helpers.fileserver import Behaviour
from tests.snapshots.fakes import FakeEngine, FakeHub, FakeStore, demo_snapshot
from tests.ui.conftest import enqueue, wait_for


async def test_download_owned_by_another_process_shows_elsewhere(config, server, gguf_bytes):
    server.add("/shared.gguf", gguf_bytes, Behaviour(rate=256 * 1024))
    other = GgufApp(config)  # stands in for another gguf-tui on the same store
    async with other.run_test() as other_pilot:
        await wait_for(other_pilot, lambda: other._engine_ready, what="other engine")
        await enqueue(other, server, "shared")
        await wait_for(other_pilot, lambda: any(v.bytes_done for v in other.jobs.values()), what="other downloading")
        app = GgufApp(config)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app._engine_ready, what="engine")
            # The other process's queue record is restored here, paused; resuming it finds the
            # download owned by the other process and waits for it instead of writing too.
            job_id = await enqueue(app, server, "shared")
            await wait_for(pilot, lambda: job_id in app.jobs, what="listed")
            await pilot.press("tab")
            if app.jobs[job_id].state == JobState.PAUSED:
                await pilot.press("space")
            await wait_for(pilot, lambda: app.jobs[job_id].state == JobState.ELSEWHERE, what="downloading elsewhere")
            cell = app.query_one("#queue").get_cell(str(job_id), "state").plain.strip()
            assert cell == "downloading elsewhere"
            assert "pid" in app.query_one("#detail").shown.plain
            await pilot.press("space")  # stop waiting for it
            await wait_for(pilot, lambda: app.jobs[job_id].state == JobState.PAUSED, what="paused")


async def test_status_bar_turns_red_when_the_queue_does_not_fit(config):
    snapshot = demo_snapshot()
    snapshot.free_space = 10_000_000_000  # the demo queue still needs about 49 GB
    app = GgufApp(config, engine=FakeEngine(), hub=FakeHub(), store=FakeStore(snapshot))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app._engine_ready, what="start")
        bar = app.query_one("#status")
        assert bar.has_class("-short")
        assert "won't fit" in str(bar.render())
    text = status_text(StoreStatus(store_size=1, free_space=100, queue_needs=50, margin=10), Style())
    assert "won't fit" not in text.plain
    assert "won't fit" in status_text(StoreStatus(free_space=100, queue_needs=95, margin=10), Style()).plain


async def test_unusable_store_is_reported_not_fatal(config, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    config.store = blocker / "models"
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: any("store" in n.message for n in app._notifications), what="reported")
        assert app.is_running
        await pilot.press("p", "escape", "question_mark", "escape", "slash", "escape")
        assert app.is_running


async def test_hub_unreachable_is_reported(config):
    config.hub.endpoint = "http://127.0.0.1:9"  # nothing listens there
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await pilot.press("slash", *"qwen", "enter")
        await wait_for(pilot, lambda: app.search and app.search.error, timeout=20, what="search error")
        assert "cannot reach the Hub" in app.search.error
        assert app.is_running
