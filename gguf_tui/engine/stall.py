"""A stall watchdog for one request: no bytes for `stall_timeout` seconds ends it.

aiohttp's `sock_read` timeout does the same by cancelling and re-arming a timer on every socket
read, per-chunk work on the event loop for the whole body; this reads a progress clock about
once a second instead. The clock is the time of the last bytes received (set by whoever reads
the body, on the loop or on a thread), or now while the reader waits on the rate limiter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

from gguf_tui.engine.errors import NetworkError

T = TypeVar("T")
CHECK_EVERY = 1.0  # seconds between two looks at the progress clock


def stalled_message(stall_timeout: float) -> str:
    return f"stalled: no data for {stall_timeout:g} s"


async def watch_for_stall(
    work: Awaitable[T], last_progress: Callable[[], float], stall_timeout: float
) -> T:
    """Await `work`; cancel it and raise NetworkError when `last_progress()` (a monotonic
    time) falls more than `stall_timeout` seconds behind."""
    task = asyncio.ensure_future(work)
    step = max(0.05, min(CHECK_EVERY, stall_timeout / 4))
    try:
        while True:
            done, _ = await asyncio.wait([task], timeout=step)
            if done:
                return task.result()
            if time.monotonic() - last_progress() > stall_timeout:
                task.cancel()
                await asyncio.wait([task])
                if task.cancelled():
                    raise NetworkError(stalled_message(stall_timeout))
                return task.result()  # it ended (or failed) on its own meanwhile
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait([task])
        raise
