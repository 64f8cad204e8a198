"""Typed events the engine emits; the CLI and the TUI consume the same stream.

Every event carries `seq`, its place in the engine's one ordered stream (0 until the engine
interface numbers it), so a client that attaches with a snapshot at seq N knows that events
with seq <= N are already in it. JSON: `to_json()` / `event_from_json()`, one flat object with
an "event" key naming the type; the service sends exactly that on the wire.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

from gguf_tui.engine.spec import JobState
from gguf_tui.engine.views import JobView


class StateReason(str, enum.Enum):
    """Why a job changed state, so clients branch on a value instead of matching messages."""

    NONE = ""
    ALREADY_IN_STORE = "already_in_store"  # completed without downloading: the store had it
    DISK_FULL = "disk_full"  # paused: the partial is kept, free some space then resume
    SHUTDOWN = "shutdown"  # paused because the engine stopped (SIGTERM, engine stop, quit)
    USER = "user"  # a client asked (pause, resume, cancel, retry)
    RESTORED = "restored"  # an earlier run's download, back in the queue paused
    ELSEWHERE = "elsewhere"  # another process owns the download


@dataclass(frozen=True)
class EngineEvent:
    job_id: int
    seq: int = field(default=0, kw_only=True)

    def to_json(self) -> dict:
        data = asdict(self)
        data["event"] = type(self).__name__.lower()
        for key, value in list(data.items()):
            if isinstance(value, enum.Enum):
                data[key] = value.value
        return data


@dataclass(frozen=True)
class StateChanged(EngineEvent):
    name: str
    state: JobState
    message: str = ""
    reason: StateReason = StateReason.NONE
    bytes_done: int | None = None  # the job's progress at the change, when the engine knows it
    total: int | None = None


@dataclass(frozen=True)
class Progress(EngineEvent):
    name: str
    bytes_done: int
    total: int | None
    speed: float  # bytes per second, smoothed
    eta: float | None  # seconds
    phase: str = "downloading"  # or "re-checking" while a resumed prefix is re-hashed
    file: str = ""


@dataclass(frozen=True)
class Retrying(EngineEvent):
    name: str
    attempt: int
    max_attempts: int
    reason: str
    delay: float


@dataclass(frozen=True)
class JobError(EngineEvent):
    name: str
    message: str


@dataclass(frozen=True)
class Notice(EngineEvent):
    """Something the user should know that is not an error (e.g. a discarded partial)."""

    name: str
    message: str


@dataclass(frozen=True)
class JobAdded(EngineEvent):
    """A job entered the queue (enqueued by any client, or restored); `view` is its state then."""

    view: JobView

    def to_json(self) -> dict:
        return {"event": "jobadded", "job_id": self.job_id, "seq": self.seq, "view": self.view.to_json()}


@dataclass(frozen=True)
class JobRemoved(EngineEvent):
    """A finished job was removed from the list."""


@dataclass(frozen=True)
class OrderChanged(EngineEvent):
    """The queue order changed; `order` is the whole new order of job ids (job_id: the mover)."""

    order: tuple[int, ...]

    def to_json(self) -> dict:
        return {"event": "orderchanged", "job_id": self.job_id, "seq": self.seq, "order": list(self.order)}


EVENT_TYPES: dict[str, type[EngineEvent]] = {
    cls.__name__.lower(): cls
    for cls in (StateChanged, Progress, Retrying, JobError, Notice, JobAdded, JobRemoved, OrderChanged)
}


def event_from_json(data: dict) -> EngineEvent:
    """The event that `to_json()` wrote; ValueError for an unknown or malformed one."""
    try:
        cls = EVENT_TYPES[data["event"]]
        fields_in = {key: value for key, value in data.items() if key != "event"}
        if cls is StateChanged:
            fields_in["state"] = JobState(fields_in["state"])
            fields_in["reason"] = StateReason(fields_in.get("reason") or "")
        elif cls is JobAdded:
            fields_in["view"] = JobView.from_json(fields_in["view"])
        elif cls is OrderChanged:
            fields_in["order"] = tuple(int(job_id) for job_id in fields_in["order"])
        return cls(**fields_in)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an engine event: {exc}") from None
