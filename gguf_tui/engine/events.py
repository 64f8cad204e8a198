"""Typed events the engine emits; the CLI and the TUI consume the same stream."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gguf_tui.engine.spec import JobState


@dataclass(frozen=True)
class EngineEvent:
    job_id: int

    def to_json(self) -> dict:
        data = asdict(self)
        data["event"] = type(self).__name__.lower()
        for key, value in list(data.items()):
            if isinstance(value, JobState):
                data[key] = value.value
        return data


@dataclass(frozen=True)
class StateChanged(EngineEvent):
    name: str
    state: JobState
    message: str = ""


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
