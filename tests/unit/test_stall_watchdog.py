"""The per-request stall watchdog that replaces aiohttp's per-read timer (issue 16)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gguf_tui.engine.errors import NetworkError
from gguf_tui.engine.stall import watch_for_stall


async def test_no_progress_is_a_stall_and_the_work_is_cancelled():
    cancelled = asyncio.Event()
    started = time.monotonic()

    async def silent() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(NetworkError, match="stalled: no data for 0.2 s"):
        await watch_for_stall(silent(), lambda: started, 0.2)
    assert cancelled.is_set()


async def test_progress_keeps_slow_work_alive():
    clock = {"last": time.monotonic()}

    async def trickle() -> str:
        for _ in range(8):  # 8 x 0.1 s: longer than the timeout, but never silent for it
            await asyncio.sleep(0.1)
            clock["last"] = time.monotonic()
        return "done"

    assert await watch_for_stall(trickle(), lambda: clock["last"], 0.4) == "done"


async def test_failures_of_the_work_pass_through():
    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await watch_for_stall(fails(), time.monotonic, 5.0)


async def test_cancelling_the_watcher_cancels_the_work():
    cancelled = asyncio.Event()

    async def silent() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    watcher = asyncio.ensure_future(watch_for_stall(silent(), time.monotonic, 30.0))
    await asyncio.sleep(0)
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher
    assert cancelled.is_set()
