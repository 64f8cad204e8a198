"""The dashboard as a client of the engine service (a real service process per test).

q detaches and the download goes on; Q pauses everything and leaves; two dashboards see each
other's actions; when the service dies the dashboard says so and starts it again on a key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from gguf_tui.config import load_config
from gguf_tui.engine.api import JobState, PullOptions, QueueMirror
from gguf_tui.service.client import ServiceClient
from gguf_tui.service.paths import service_paths
from gguf_tui.tui.app import GgufApp
from tests.conftest import sha256_of
from tests.helpers.fileserver import Behaviour
from tests.ui.conftest import detail_text, service_pid, wait_for

SLOW = 256 * 1024  # bytes/s: a 3 MiB model takes about 12 s


@pytest.fixture
def service_config(service_config_file):
    return load_config(service_config_file)


def state(app: GgufApp, job_id: int) -> JobState | None:
    view = app.jobs.get(job_id)
    return view.state if view else None


async def _attach(config) -> tuple[ServiceClient, QueueMirror]:
    client = ServiceClient(service_paths(config.store))
    await client.connect()
    return client, QueueMirror(await client.subscribe())


async def _until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_q_detaches_the_download_goes_on_and_Q_pauses_everything(service_config, server, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    app = GgufApp(service_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="attached")
        assert app.engine_kind == "service"
        assert "engine service" in app.query_one("#status").render().plain
        job_id = await app.engine.enqueue(url, PullOptions(name="m"))
        await wait_for(pilot, lambda: state(app, job_id) == JobState.DOWNLOADING, what="downloading")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.return_value == 0 and app.detached_jobs == 1
    pid = service_pid(store)
    assert pid is not None

    client, queue = await _attach(service_config)  # the download went on without the dashboard
    try:
        events = asyncio.ensure_future(_drain(queue))
        start = queue.jobs[job_id].bytes_done
        await _until(lambda: queue.jobs[job_id].bytes_done > start, what="more bytes after q")
        assert queue.jobs[job_id].state == JobState.DOWNLOADING

        second = GgufApp(service_config)
        async with second.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: state(second, job_id) == JobState.DOWNLOADING, what="listed")
            # The detail's resume state comes from the service's view of the job, read live.
            await pilot.press("tab")
            await wait_for(pilot, lambda: "range" in detail_text(second) and "saved" in detail_text(second),
                           what="resume state in the detail")
            await pilot.press("Q")  # quit and pause everything
            await wait_for(pilot, lambda: not second.is_running, what="exit")
        assert second.detached_jobs == 0
        await _until(lambda: queue.jobs[job_id].state == JobState.PAUSED, what="paused by Q")
        events.cancel()
    finally:
        await client.close()
    assert service_pid(store) == pid  # Q pauses the downloads; the service itself stays


async def _drain(queue: QueueMirror) -> None:
    async for _event in queue.events():
        pass


async def test_two_dashboards_see_each_others_pause_move_and_remove(service_config, server, gguf_bytes):
    urls = [server.add(f"/{name}.gguf", gguf_bytes, Behaviour(rate=SLOW)) for name in ("a", "b")]
    one = GgufApp(service_config)
    async with one.run_test(size=(120, 40)) as pilot_one:
        await wait_for(pilot_one, lambda: one._engine_ready, what="first attached")
        ids = [await one.engine.enqueue(url, PullOptions(name=name)) for url, name in zip(urls, "ab")]
        two = GgufApp(service_config)
        async with two.run_test(size=(120, 40)) as pilot_two:
            await wait_for(pilot_two, lambda: all(state(two, i) == JobState.DOWNLOADING for i in ids), what="both listed")
            await wait_for(pilot_one, lambda: all(state(one, i) == JobState.DOWNLOADING for i in ids), what="running")

            # Pause the first download with the keys of dashboard one: the other sees it within
            # half a second of the first one seeing it (both get the same broadcast).
            await pilot_one.press("tab")
            assert one.query_one("#queue").current_job_id == ids[0]
            await pilot_one.press("space")
            await wait_for(pilot_one, lambda: state(one, ids[0]) == JobState.PAUSED, what="paused in one")
            await wait_for(pilot_two, lambda: state(two, ids[0]) == JobState.PAUSED, timeout=0.5, what="paused in two")

            # Move it down in one: two shows the new order.
            await pilot_one.press("J")
            await wait_for(pilot_two, lambda: two.job_order == ids[::-1], what="order in two")
            assert one.job_order == ids[::-1]

            # Cancel it from two, then clear the row from one: both lists lose it.
            await two.engine.cancel(ids[0])
            await wait_for(pilot_one, lambda: state(one, ids[0]) == JobState.CANCELLED, what="cancelled, seen in one")
            await one.engine.remove(ids[0])
            await wait_for(pilot_two, lambda: ids[0] not in two.jobs, what="removed, seen in two")
            await wait_for(pilot_one, lambda: ids[0] not in one.jobs and one.job_order == [ids[1]], what="removed in one")
            assert two.job_order == [ids[1]]


async def test_a_dead_service_is_reported_and_restarted_by_a_key(service_config, server, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    app = GgufApp(service_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="attached")
        job_id = await app.engine.enqueue(url, PullOptions(name="m"))
        await wait_for(pilot, lambda: job_id in app.jobs and app.jobs[job_id].bytes_done > 0, what="bytes")
        await asyncio.sleep(0.5)  # a resume state saved (state_save_interval 0.2 s)
        pid = service_pid(store)
        os.kill(pid, signal.SIGKILL)
        await wait_for(pilot, lambda: app.engine_state == "gone", what="noticed the service died")
        assert any("engine service stopped" in n.message and "R" in n.message for n in app._notifications)
        assert "stopped" in app.query_one("#status").render().plain

        server.behaviours["/m.gguf"].rate = None
        await pilot.press("R")
        await wait_for(pilot, lambda: app.engine_state == "attached", what="attached again")
        assert service_pid(store) not in (None, pid)
        # The new service restores the job and resumes it (it was running when killed).
        [new_id] = [i for i, view in app.jobs.items() if view.name == "m"]
        await wait_for(pilot, lambda: state(app, new_id) == JobState.COMPLETED, timeout=30, what="completed")
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert any(r.range_start for r in server.requests("/m.gguf")[1:])  # resumed, not restarted


async def test_sigterm_detaches_from_the_service(service_config, server, gguf_bytes):
    """SIGTERM (and SIGHUP, see test_signals_on_a_pty) leave as q does: the download goes on."""
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    app = GgufApp(service_config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="attached")
        job_id = await app.engine.enqueue(url, PullOptions(name="m"))
        await wait_for(pilot, lambda: state(app, job_id) == JobState.DOWNLOADING, what="downloading")
        app._on_signal(signal.SIGTERM)  # what the handler calls
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.exit_code == 130 and app.detached_jobs == 1
    client, queue = await _attach(service_config)
    try:
        assert queue.jobs[job_id].state == JobState.DOWNLOADING
    finally:
        await client.close()


async def test_cancel_asks_with_the_services_preview(service_config, server, store, gguf_bytes):
    """The confirmation's promise comes from the engine side (cancel_preview over the socket)."""
    from gguf_tui.tui.screens.confirm import ConfirmScreen

    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    app = GgufApp(service_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="attached")
        job_id = await app.engine.enqueue(url, PullOptions(name="m"))
        await wait_for(pilot, lambda: job_id in app.jobs and app.jobs[job_id].bytes_done > 0, what="bytes")
        await asyncio.sleep(0.5)  # the partial is on disk
        await pilot.press("tab", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "partial download is deleted" in app.screen.body.plain
        await pilot.press("y")
        await wait_for(pilot, lambda: state(app, job_id) == JobState.CANCELLED, what="cancelled")
        key = app.jobs[job_id].files[0].key_hash
        await wait_for(pilot, lambda: not (store / ".gguf-tui" / "partials" / f"{key}.part").exists(), what="partial gone")
