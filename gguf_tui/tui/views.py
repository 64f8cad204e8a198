"""Plain view models the panes render: no widgets here, so they are cheap to test.

`JobView` is the dashboard's own picture of a download, built from the engine's job list once
and then kept current from engine events only (so the engine could live in another process).
Local models are the store package's own `StoreModel`s (`gguf_tui.store.scan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gguf_tui.engine.events import Progress, Retrying, StateChanged
from gguf_tui.engine.spec import JobState


@dataclass(frozen=True)
class JobFile:
    dest: str
    size: int | None
    expected_sha256: str | None
    role: str
    key_hash: str = ""  # names its partial and resume state in the store


@dataclass(frozen=True)
class JobView:
    id: int
    name: str
    state: JobState
    message: str = ""
    bytes_done: int = 0
    total: int | None = None
    speed: float = 0.0
    eta: float | None = None
    phase: str = "downloading"
    retry_attempt: int = 0
    retry_max: int = 0
    retry_reason: str = ""
    files: tuple[JobFile, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_job(cls, job: Any) -> JobView:
        """From an engine `Job` (a snapshot taken once, at start or when the job appears)."""
        return cls(
            id=job.id,
            name=job.name,
            state=job.state,
            message=job.message,
            bytes_done=job.bytes_done,
            total=job.total,
            speed=job.speed,
            eta=job.eta,
            phase=job.phase,
            retry_attempt=job.retry_attempt,
            retry_max=job.retry_max,
            retry_reason=job.retry_reason,
            files=tuple(
                JobFile(r.dest, r.expected_size, r.expected_sha256, r.role, r.key_hash)
                for r in job.spec.files
            ),
            source=dict(job.spec.source),
        )

    @property
    def remaining(self) -> int:
        """Bytes still to download (0 when unknown or finished)."""
        if self.state.is_final or self.total is None:
            return 0
        return max(0, self.total - self.bytes_done)

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.total)

    def apply(self, event: StateChanged | Progress | Retrying) -> JobView:
        """The view after one engine event."""
        if isinstance(event, Progress):
            return replace(
                self,
                bytes_done=event.bytes_done,
                total=event.total if event.total is not None else self.total,
                speed=event.speed,
                eta=event.eta,
                phase=event.phase,
            )
        if isinstance(event, Retrying):
            return replace(
                self,
                state=JobState.RETRYING,
                retry_attempt=event.attempt,
                retry_max=event.max_attempts,
                retry_reason=event.reason,
            )
        changes: dict[str, Any] = {"state": event.state}
        if event.message != "moved":
            changes["message"] = event.message
        if event.state != JobState.RETRYING:
            changes["retry_reason"] = ""
        if not event.state.is_active:
            changes.update(speed=0.0, eta=None)
        if event.state == JobState.COMPLETED and self.total:
            changes["bytes_done"] = self.total
        if event.state == JobState.CANCELLED:
            changes["bytes_done"] = 0
        return replace(self, **changes)



# The order the queue's counts are told in, on the status bar and under the queue alike.
COUNT_WORDS = ("active", "elsewhere", "queued", "paused", "failed")


def queue_counts(views: list[JobView] | tuple[JobView, ...]) -> dict[str, int]:
    """How many downloads are in each state word: the one count both status lines show.

    'active' is this process's running work (downloading, retrying, verifying); another
    process's download counts as 'elsewhere', never as active here.
    """
    counts = dict.fromkeys(COUNT_WORDS, 0)
    for view in views:
        if view.state.is_active:
            counts["active"] += 1
        elif view.state == JobState.ELSEWHERE:
            counts["elsewhere"] += 1
        elif view.state.value in counts:
            counts[view.state.value] += 1
    return counts
