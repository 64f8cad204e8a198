"""Queue management from the keyboard: pause/resume, cancel (with confirmation), retry, move."""

from __future__ import annotations

from gguf_tui.engine.api import JobState
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.screens.confirm import ConfirmScreen
from tests.helpers.fileserver import Behaviour
from tests.ui.conftest import enqueue, wait_for

SLOW = 256 * 1024  # bytes per second: a 3 MiB file stays in progress for the whole test


def state(app, job_id: int) -> JobState | None:
    view = app.jobs.get(job_id)
    return view.state if view else None


async def test_pause_resume_cancel_retry_move(any_mode_config, server, gguf_bytes, store):
    for name in ("alpha", "beta"):
        server.add(f"/{name}.gguf", gguf_bytes, Behaviour(rate=SLOW))
    app = GgufApp(any_mode_config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="engine")
        alpha = await enqueue(app, server, "alpha")
        beta = await enqueue(app, server, "beta")
        await wait_for(pilot, lambda: state(app, alpha) == JobState.DOWNLOADING and state(app, beta) == JobState.DOWNLOADING)
        await pilot.press("tab")
        queue = app.query_one("#queue")
        assert app.focused is queue and queue.current_job_id == alpha

        # J / K move the highlighted download down and up; the cursor follows it.
        await pilot.press("J")
        await wait_for(pilot, lambda: app.job_order == [beta, alpha], what="moved down")
        assert queue.current_job_id == alpha
        await pilot.press("K")
        await wait_for(pilot, lambda: app.job_order == [alpha, beta], what="moved up")

        # space pauses and resumes; progress moves in between.
        await wait_for(pilot, lambda: app.jobs[alpha].bytes_done > 0, what="progress")
        await pilot.press("space")
        await wait_for(pilot, lambda: state(app, alpha) == JobState.PAUSED, what="paused")
        assert queue.get_cell(str(alpha), "state").plain.strip() == "paused"
        assert list((store / ".gguf-tui" / "partials").glob("*.state.json"))
        await pilot.press("space")
        await wait_for(pilot, lambda: state(app, alpha) == JobState.DOWNLOADING, what="resumed")

        # c asks first; "n" keeps the download going.
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert state(app, alpha) == JobState.DOWNLOADING
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: state(app, alpha) == JobState.CANCELLED, what="cancelled")
        request = app.jobs[alpha].files[0]
        assert not (store / ".gguf-tui" / "partials" / f"{request.key_hash}.part").exists()

        # r retries a cancelled download (from 0).
        await pilot.press("r")
        await wait_for(pilot, lambda: state(app, alpha) == JobState.DOWNLOADING, what="retried")
        await pilot.press("space")  # leave it paused: the app quits quickly
        await wait_for(pilot, lambda: state(app, alpha) == JobState.PAUSED, what="paused again")


async def test_failed_download_retries_with_r(any_mode_config, server, gguf_bytes, store):
    server.add("/gamma.gguf", gguf_bytes, Behaviour(statuses=[(404, {})]))
    app = GgufApp(any_mode_config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="engine")
        gamma = await enqueue(app, server, "gamma")
        await wait_for(pilot, lambda: state(app, gamma) == JobState.FAILED, what="failed")
        assert any("404" in n.message or "not found" in n.message.lower() for n in app._notifications)
        await pilot.press("tab", "r")
        await wait_for(pilot, lambda: state(app, gamma) == JobState.COMPLETED, what="completed")
        assert (store / "gamma.gguf").read_bytes() == gguf_bytes
        # c on a finished row clears it from the list without asking.
        await pilot.press("c")
        await wait_for(pilot, lambda: gamma not in app.jobs, what="cleared")
        assert app.query_one("#queue").row_count == 0
