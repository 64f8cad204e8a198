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

__all__ += ["Engine", "Job", "make_session"]


def __getattr__(name: str):
    """`Engine`, `Job` and `make_session` are imported on first use: they bring aiohttp
    (0.3 CPU-s to import), which a client of the engine service never needs."""
    if name in ("Engine", "Job"):
        from gguf_tui.engine import queue

        return getattr(queue, name)
    if name == "make_session":
        from gguf_tui.engine.http import make_session

        return make_session
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
