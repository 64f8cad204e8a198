"""One download in the queue, and one subscriber's stream of engine events."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable

from gguf_tui.engine.errors import DownloadError
from gguf_tui.engine.events import EngineEvent
from gguf_tui.engine.spec import JobSpec, JobState

if TYPE_CHECKING:
    from gguf_tui.engine.fetch import FileDownload
    from gguf_tui.store.locks import DownloadLock, LockOwner


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
    # Who owns the job across processes: this engine holds `owner_lock` from the moment the job
    # is in its queue until it is finished or forgotten; otherwise `owner` is the process that
    # does, and this engine only shows it (or, if it asked for it, waits for it).
    owner_lock: DownloadLock | None = field(default=None, repr=False)
    owner: LockOwner | None = field(default=None, repr=False)
    seen_bytes_at: tuple[int, float] | None = field(default=None, repr=False)
    # Set by the client that queued the job (`pull --connections/--max-rate`); None: the queue's.
    connections: int | None = None
    max_rate: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def owned_elsewhere(self) -> bool:
        return self.owner_lock is None and self.owner is not None

    @property
    def running_here(self) -> bool:
        return self.task is not None and not self.task.done()


def elsewhere_phase(owner: LockOwner) -> str:
    """'downloading elsewhere', 'queued elsewhere', 'paused elsewhere' … from the owner's word."""
    return f"{owner.state or 'queued'} elsewhere"


def owner_words(owner: LockOwner) -> str:
    return owner.who()


def owner_label(owner: LockOwner) -> str:
    """'downloading (user alice)' for another user's job, else `elsewhere_phase`."""
    if owner.other_user:
        return f"{owner.state or 'queued'} (user {owner.user_name})"
    return elsewhere_phase(owner)


class OwnedElsewhere(DownloadError):
    """The job belongs to another process: only that process may pause, resume or cancel it."""

    def __init__(self, job: Job, command: str) -> None:
        owner = job.owner
        who = f"another process ({owner_words(owner)})" if owner else "another process"
        super().__init__(
            f"{job.name} is {owner_label(owner) if owner else 'owned elsewhere'}: only "
            f"{who} can {command} it; it comes to this queue when that process exits"
        )


@dataclass(frozen=True)
class CancelPreview:
    """What cancelling a job would do, for a confirmation that tells the truth."""

    refused: str = ""  # why cancelling is not allowed here (empty: allowed)
    deletes_partial: bool = True  # whether downloaded data of this job would be deleted
    kept_for: str = ""  # who keeps the partial when it is not deleted ("pid N on host")


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
