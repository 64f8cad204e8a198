"""Queue records across restarts: restored paused with their progress, forgotten when removed."""

from __future__ import annotations

import asyncio

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from tests.conftest import sha256_of
from tests.helpers.fileserver import Behaviour
from tests.helpers.hubsim import gguf_bytes as make_gguf_bytes


async def test_restore_counts_placed_parts_and_resumes(server, config, store, gguf_bytes):
    part1 = FileRequest(url=server.add("/p1.gguf", gguf_bytes), dest="o/r/x-00001-of-00002.gguf")
    slow = Behaviour(rate=1_000_000)
    other = make_gguf_bytes(tensor_bytes=len(gguf_bytes), seed=7)  # only GGUF files are placed
    part2 = FileRequest(url=server.add("/p2.gguf", other, slow), dest="o/r/x-00002-of-00002.gguf")
    async with Engine(config) as engine:
        job_id = await engine.enqueue(JobSpec("o/r:X", [part1, part2]))
        while not (store / part1.dest).exists() or engine.get(job_id).bytes_done <= len(gguf_bytes):
            await asyncio.sleep(0.02)
        await engine.pause(job_id)
    slow.rate = None
    async with Engine(config) as engine:
        [restored] = await engine.restore_jobs()
        job = engine.get(restored)
        assert job.state == JobState.PAUSED
        assert job.bytes_done > len(gguf_bytes)  # the placed part plus the partial second part
        await engine.resume(restored)
        assert (await engine.wait(restored)).state == JobState.COMPLETED
        assert await Engine(config).restore_jobs() == []
    assert sha256_of(store / part2.dest) == server.sha256("/p2.gguf")


async def test_removed_failed_job_does_not_come_back(server, config, store, gguf_bytes):
    size = len(gguf_bytes)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(reset_after=[size // 2] + [0] * 20))
    async with Engine(config) as engine:
        job = await engine.wait(await engine.enqueue(JobSpec("m", [FileRequest(url=url, dest="m.gguf")])))
        assert job.state == JobState.FAILED
        await engine.remove(job.id)
        assert engine.jobs() == []
    async with Engine(config) as engine:
        assert await engine.restore_jobs() == []
    assert not any((store / ".gguf-tui" / "partials").iterdir())
