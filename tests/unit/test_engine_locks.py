"""Download ownership from the engine's side: heartbeats, and a waiter that finds the work done."""

from __future__ import annotations

import asyncio

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine import filelanding as engine_queue
from gguf_tui.store import locks
from tests.conftest import sha256_of
from tests.helpers.fileserver import Behaviour


async def test_heartbeat_is_refreshed_while_downloading(server, config, gguf_bytes, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_EVERY", 0.1)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=1_000_000))
    spec = JobSpec("m", [FileRequest(url=url, dest="m.gguf")])
    async with Engine(config) as engine:
        job_id = await engine.enqueue(spec)
        lock_path = engine.layout.lock_path(spec.files[0].key_hash)
        while locks.read_owner(lock_path) is None:
            await asyncio.sleep(0.02)
        first = locks.read_owner(lock_path).heartbeat
        await asyncio.sleep(0.8)
        later = locks.read_owner(lock_path)
        assert later is not None and later.heartbeat > first
        assert later.what == "m.gguf"
        await engine.cancel(job_id)
    assert not lock_path.exists()


async def test_waiter_takes_the_finished_file_instead_of_downloading_again(
    server, config, store, gguf_bytes, monkeypatch
):
    monkeypatch.setattr(engine_queue, "ELSEWHERE_POLL", 0.1)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=3_000_000))
    spec = lambda: JobSpec("m", [FileRequest(url=url, dest="m.gguf")])  # noqa: E731
    async with Engine(config) as owner, Engine(config) as waiter:
        events = waiter.subscribe()
        first = await owner.enqueue(spec())
        while not server.requests("/m.gguf"):
            await asyncio.sleep(0.01)
        second = await waiter.enqueue(spec())
        waited = await waiter.wait(second)
        assert (await owner.wait(first)).state == JobState.COMPLETED
        assert waited.state == JobState.COMPLETED
        states = []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            if hasattr(event, "state"):
                states.append((event.state, event.message))
        assert any(state == JobState.ELSEWHERE and "pid" in msg for state, msg in states)
    assert len(server.requests("/m.gguf")) == 1  # the waiter did not fetch it again
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_cancelling_a_waiting_job_leaves_the_other_process_download_alone(
    server, config, config_file, store, gguf_bytes
):

    from tests.conftest import start_pull

    behaviour = Behaviour(rate=1_000_000)
    url = server.add("/m.gguf", gguf_bytes, behaviour)
    request = FileRequest(url=url, dest="m.gguf")
    owner = await start_pull(config_file, url)
    async with Engine(config) as engine:
        partial = engine.layout.partial_path(request.key_hash)
        while not partial.exists() or not server.requests("/m.gguf"):
            await asyncio.sleep(0.02)
        job_id = await engine.enqueue(JobSpec("m", [FileRequest(url=url, dest="m.gguf")]))
        while engine.get(job_id).state != JobState.ELSEWHERE:
            await asyncio.sleep(0.02)
        await engine.cancel(job_id)
        assert engine.get(job_id).state == JobState.CANCELLED
        assert partial.exists()  # the other process's partial was not touched
    behaviour.rate = None
    _out, err = await asyncio.wait_for(owner.communicate(), 30)
    assert owner.returncode == 0, err.decode()
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
