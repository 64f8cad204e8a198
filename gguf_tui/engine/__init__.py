"""Asyncio download engine: queue, jobs, HTTP, resume state, hashing, retries, placement.

Clients (CLI, TUI) use only `Engine`, the specs in `spec.py` and the events in `events.py`.
"""

from gguf_tui.engine.events import (
    EngineEvent,
    JobError,
    Notice,
    Progress,
    Retrying,
    StateChanged,
)
from gguf_tui.engine.spec import FileRequest, JobSpec, JobState

__all__ = [
    "EngineEvent",
    "FileRequest",
    "JobError",
    "JobSpec",
    "JobState",
    "Notice",
    "Progress",
    "Retrying",
    "StateChanged",
]

from gguf_tui.engine.http import make_session  # noqa: E402
from gguf_tui.engine.queue import Engine, Job  # noqa: E402

__all__ += ["Engine", "Job", "make_session"]
