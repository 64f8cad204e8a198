"""One download in the queue, and one subscriber's stream of engine events."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable

from gguf_tui.engine.events import EngineEvent
from gguf_tui.engine.spec import JobSpec, JobState

if TYPE_CHECKING:
    from gguf_tui.engine.fetch import FileDownload
    from gguf_tui.store.locks import DownloadLock


@dataclass
class Job:
    """A queued download: its spec, its state and progress as the queue last saw them."""

    id: int
    spec: JobSpec
    state: JobState = JobState.QUEUED
    message: str = ""
    bytes_done: int = 0
    total: int | None = None
    speed: float = 0.0
    eta: float | None = None
    phase: str = "downloading"
    retry_attempt: int = 0
    retry_max: int = 0
    retry_reason: str = ""
    checksum_failures: int = 0
    created_at: float = field(default_factory=time.time)
    task: asyncio.Task | None = field(default=None, repr=False)
    current: FileDownload | None = field(default=None, repr=False)
    completed_bytes: int = 0
    wanted_state: JobState | None = field(default=None, repr=False)
    lock: DownloadLock | None = field(default=None, repr=False)
    # Set by the client that queued the job (`pull --connections/--max-rate`); None: the queue's.
    connections: int | None = None
    max_rate: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name


class EventStream:
    """An async iterator over engine events for one subscriber."""

    def __init__(self, on_close: Callable[[EventStream], None]) -> None:
        self._on_close = on_close
        self.queue: asyncio.Queue[EngineEvent] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[EngineEvent]:
        return self

    async def __anext__(self) -> EngineEvent:
        return await self.queue.get()

    def close(self) -> None:
        self._on_close(self)
