"""`pull --max-rate/--connections` shape the asking client's own jobs, not the whole engine.

With one engine shared by every client (the service), a rate limit one `pull` asked for must
not slow the downloads of the next one, nor stay set after its job is done.
"""

from __future__ import annotations

import asyncio

from gguf_tui.engine.api import JobState, PullOptions, QueueMirror
from gguf_tui.engine.local import LocalEngine
from tests.conftest import sha256_of


async def test_a_jobs_rate_limit_slows_only_that_job(server, config, store, gguf_bytes):
    slow_url = server.add("/slow.gguf", gguf_bytes)
    fast_url = server.add("/fast.gguf", gguf_bytes)
    async with LocalEngine(config) as engine:
        queue = QueueMirror(await engine.subscribe())
        slow = await engine.enqueue(slow_url, PullOptions(max_rate=100_000, connections=1))
        fast = await engine.enqueue(fast_url)
        views = await asyncio.wait_for(queue.follow([fast], done=lambda v: v.state.is_final), 30)
        assert views[fast].state == JobState.COMPLETED
        # 3 MiB at 100 kB/s takes half a minute: the limited job is far from done.
        assert queue.jobs[slow].state.is_active and queue.jobs[slow].bytes_done < len(gguf_bytes) // 2
        assert engine.queue.limiter.rate is None  # the engine-wide limit is untouched
        await engine.cancel(slow)
    assert sha256_of(store / "fast.gguf") == server.sha256("/fast.gguf")


async def test_a_jobs_connections_apply_to_that_job_only(server, config, gguf_bytes):
    url_a = server.add("/a.gguf", gguf_bytes)
    url_b = server.add("/b.gguf", gguf_bytes)
    async with LocalEngine(config) as engine:
        a = await engine.enqueue(url_a, PullOptions(connections=3, paused=True))
        b = await engine.enqueue(url_b, PullOptions(paused=True))
        assert engine.queue.get(a).connections == 3
        assert engine.queue.get(b).connections is None
        assert engine.queue.connections == config.downloads.connections
