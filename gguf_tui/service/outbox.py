"""One client's outgoing frames: bounded, with progress coalesced to the latest per job.

The engine hands every event to every outbox synchronously and never waits on a client; a
writer task drains the outbox onto the socket at the client's pace. A client that falls
`limit` frames behind is dropped (it may re-attach and gets a fresh snapshot), so a stuck
client costs a bounded amount of memory and never slows a download.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from gguf_tui.engine.events import EngineEvent, Progress
from gguf_tui.service.protocol import encode

DEFAULT_LIMIT = 512


class Outbox:
    def __init__(self, on_overflow: Callable[[], None], limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._on_overflow = on_overflow
        self._frames: deque[bytes | int] = deque()  # an int: "the latest progress of that job"
        self._progress: dict[int, Progress] = {}
        self._ready = asyncio.Event()
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._frames)

    def put_frame(self, frame: dict) -> None:
        self._append(encode(frame))

    def put_event(self, event: EngineEvent) -> None:
        if isinstance(event, Progress):
            if event.job_id not in self._progress:
                self._append(event.job_id)
            self._progress[event.job_id] = event
            return
        self._append(encode({"op": "event", **event.to_json()}))

    def _append(self, item: bytes | int) -> None:
        if self.overflowed:
            return
        if len(self._frames) >= self.limit:
            self.overflowed = True
            self._frames.clear()
            self._progress.clear()
            self._on_overflow()
            return
        self._frames.append(item)
        self._ready.set()

    async def next_batch(self) -> bytes:
        """Every frame waiting now, joined; waits while there is none."""
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        parts = []
        while self._frames:
            item = self._frames.popleft()
            if isinstance(item, int):
                progress = self._progress.pop(item)
                parts.append(encode({"op": "event", **progress.to_json()}))
            else:
                parts.append(item)
        return b"".join(parts)
