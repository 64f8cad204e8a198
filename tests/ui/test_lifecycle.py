"""Start and stop: paused downloads survive a restart; q, SIGTERM and SIGHUP pause and save."""

from __future__ import annotations

import signal

from gguf_tui.engine.api import JobState
from gguf_tui.tui.app import EXIT_INTERRUPTED, GgufApp
from tests.helpers.fileserver import Behaviour
from tests.ui.conftest import detail_text, enqueue, wait_for

SLOW = 256 * 1024


async def test_paused_download_survives_restart(config, server, gguf_bytes, store):
    server.add("/alpha.gguf", gguf_bytes, Behaviour(rate=SLOW))
    first = GgufApp(config)
    async with first.run_test() as pilot:
        await wait_for(pilot, lambda: first._engine_ready, what="engine")
        job_id = await enqueue(first, server, "alpha")
        await wait_for(pilot, lambda: job_id in first.jobs and first.jobs[job_id].bytes_done > 100_000, what="progress")
        await pilot.press("q")  # pauses the running download and saves its state
        await wait_for(pilot, lambda: not first.is_running, what="exit")
    assert first.return_value == 0
    saved = list((store / ".gguf-tui" / "partials").glob("*.state.json"))
    assert len(saved) == 1

    server.behaviours["/alpha.gguf"].rate = None
    second = GgufApp(config)
    async with second.run_test() as pilot:
        await wait_for(pilot, lambda: second.jobs, what="restored")
        view = next(iter(second.jobs.values()))
        assert view.name == "alpha" and view.state == JobState.PAUSED and view.bytes_done > 100_000
        assert any("unfinished download" in n.message for n in second._notifications)
        await pilot.press("tab")  # the queue: its detail shows the resume state
        text = detail_text(second)
        assert "paused" in text and "resume" in text and "range" in text and "etag" in text and "saved" in text
        await pilot.press("space")
        await wait_for(pilot, lambda: second.jobs[view.id].state == JobState.COMPLETED, what="completed")
    assert (store / "alpha.gguf").read_bytes() == gguf_bytes
    # Resumed, not restarted: the second run asked for the rest only.
    assert any(r.range_start for r in server.requests("/alpha.gguf")[1:])


async def test_sighup_pauses_saves_and_exits(config, server, gguf_bytes, store):
    server.add("/beta.gguf", gguf_bytes, Behaviour(rate=SLOW))
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="engine")
        job_id = await enqueue(app, server, "beta")
        await wait_for(pilot, lambda: job_id in app.jobs and app.jobs[job_id].bytes_done > 0, what="progress")
        engine = app.engine  # in this process (engine.mode: local): a SIGHUP pauses it
        app._on_signal(signal.SIGHUP)  # what the loop's handler calls when the SSH link drops
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.exit_code == EXIT_INTERRUPTED
    assert engine.queue.get(job_id).state == JobState.PAUSED
    assert list((store / ".gguf-tui" / "partials").glob("*.state.json"))
    assert list((store / ".gguf-tui" / "jobs").glob("*.json"))
