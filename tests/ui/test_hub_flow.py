"""Search the Hub, open a repo, queue a quantisation, watch it complete."""

from __future__ import annotations

import asyncio

from gguf_tui.engine.api import JobState
from gguf_tui.tui.app import GgufApp
from tests.ui.conftest import detail_text, rows_text, wait_for


async def test_search_open_queue_complete(any_mode_config, hub, store):
    any_mode_config.hub.endpoint = hub.endpoint  # and HF_ENDPOINT, which a service inherits
    app = GgufApp(any_mode_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app._engine_ready, what="start")
        await pilot.press("slash")
        await pilot.press(*"tiny", "enter")
        await wait_for(pilot, lambda: any("demo/Tiny-GGUF" in line for line in rows_text(app)), what="results")
        assert app.current_row().key == "repo:demo/Tiny-GGUF"
        assert "120k" in app.current_row().info.plain
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Q4_K_M" in line for line in rows_text(app)), what="quants")
        lines = rows_text(app)
        assert any("mmproj-Tiny-F16.gguf" in line for line in lines)
        await pilot.press("down")
        row = app.current_row()
        assert row.kind == "quant" and row.group.quant == "Q4_K_M"
        assert "+ mmproj" in row.info.plain and "1 file" in row.info.plain
        # GGUF facts of the Hub file are read remotely (Range requests) before any download.
        await wait_for(pilot, lambda: "arch llama" in detail_text(app), what="remote facts")
        assert "sha256" in detail_text(app)
        await pilot.press("d")
        await wait_for(pilot, lambda: app.jobs, what="queued")
        job = next(iter(app.jobs.values()))
        assert job.name == "demo/Tiny-GGUF:Q4_K_M"
        await wait_for(pilot, lambda: app.jobs[job.id].state == JobState.COMPLETED, what="completed")
        assert (store / "demo/Tiny-GGUF/Tiny-Q4_K_M.gguf").is_file()
        assert (store / "demo/Tiny-GGUF/mmproj-Tiny-F16.gguf").is_file()
        # The finished model shows up under local models, and the quant says so.
        await wait_for(
            pilot,
            lambda: any(r.kind == "local" and r.model.name == job.name for r in app.query_one("#catalog").catalog_rows),
            what="local model listed",
        )
        quant = next(r for r in app.query_one("#catalog").catalog_rows if r.key == row.key)
        assert "in store" in quant.info.plain
        # The CDN never saw a token, and the queue row reads 100 %.
        assert all("Authorization" not in r.headers for r in hub.requests_to("cdn"))
        queue = app.query_one("#queue")
        assert queue.get_cell(str(job.id), "state").plain.strip() == "completed"
        assert queue.get_cell(str(job.id), "percent").plain.strip() == "100%"


async def test_hub_errors_are_notifications(hub_config, hub):
    hub.fail(500, path_contains="/api/models", times=10)
    app = GgufApp(hub_config)
    async with app.run_test() as pilot:
        await pilot.press("slash", *"tiny", "enter")
        await wait_for(pilot, lambda: app.search and app.search.error, what="search error")
        assert any("search failed" in n.message for n in app._notifications)
        assert any("HTTP 500" in line or "!" in line for line in rows_text(app))
        assert app.is_running


class _SlowToAttach:
    """A real in-process engine whose subscription waits for `attached`: stands in for a
    service that takes a moment to start."""

    def __init__(self, config) -> None:
        from gguf_tui.engine.local import LocalEngine

        self.local = LocalEngine(config)
        self.attached = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.local, name)

    async def subscribe(self):
        await self.attached.wait()
        await self.local.start()
        return await self.local.subscribe()


async def test_d_while_the_engine_attaches_is_queued_once_it_is_up(hub_config, hub, store):
    engine = _SlowToAttach(hub_config)
    app = GgufApp(hub_config, engine=engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("slash")
        await pilot.press(*"tiny", "enter")
        await wait_for(pilot, lambda: any("demo/Tiny-GGUF" in line for line in rows_text(app)), what="results")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Q4_K_M" in line for line in rows_text(app)), what="quants")
        await pilot.press("down", "d")
        await wait_for(pilot, lambda: any("queued once it is up" in n.message for n in app._notifications), what="told")
        assert not app._engine_ready and not app.jobs
        engine.attached.set()
        await wait_for(pilot, lambda: app.jobs, what="queued after attaching")
        job = next(iter(app.jobs.values()))
        assert job.name == "demo/Tiny-GGUF:Q4_K_M"
        await wait_for(pilot, lambda: app.jobs[job.id].state == JobState.COMPLETED, what="completed")
