"""Messages workers post to the app; the app's handlers own every piece of state.

An async flow is a chain of these (e.g. SearchFinished -> catalog rebuilt), so a test can
watch it with `message_hook`. Progress uses `can_replace`, so a burst from a fast download
collapses to the newest event per job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from gguf_tui.engine.api import EngineEvent, Progress


@dataclass
class EngineEventPosted(Message):
    """A state change, retry, error or notice from the engine."""

    event: EngineEvent


@dataclass
class JobProgress(Message):
    event: Progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgress) and message.event.job_id == self.event.job_id


@dataclass
class EngineReady(Message):
    """Attached: the queue as the engine has it, and how the engine runs ("service", "local")."""

    snapshot: Any  # engine.api.Snapshot
    kind: str
    restored: int = 0  # unfinished downloads an in-process engine brought back, paused


@dataclass
class EngineGone(Message):
    """The event stream ended without this app asking: the service stopped or was killed."""

    error: str


@dataclass
class JobFiles(Message):
    """One job's files with their resume state read now (the detail pane's live numbers)."""

    view: Any  # engine.api.JobView


@dataclass
class EngineFailed(Message):
    error: str


@dataclass
class StoreScanned(Message):
    snapshot: Any  # gguf_tui.store.scan.StoreSnapshot


@dataclass
class StoreChanged(Message):
    """The store watcher saw files appear, vanish or change."""

    changes: Any


@dataclass
class PartialsListed(Message):
    """The partial downloads read again after the watcher saw their folder change."""

    partials: list[Any] | None  # gguf_tui.store.usage.PartialDownload; None: could not list


@dataclass
class SearchFinished(Message):
    query: str
    results: list[Any] | None
    error: str | None = None


@dataclass
class RepoLoaded(Message):
    repo: str
    files: Any | None  # gguf_tui.hub.RepoFiles
    error: str | None = None


@dataclass
class FactsLoaded(Message):
    key: str
    facts: Any  # GGUFInfo, or an error string


@dataclass
class Enqueued(Message):
    ref: str
    job_id: int | None
    name: str = ""
    error: str | None = None


@dataclass
class JobRemoved(Message):
    job_id: int


@dataclass
class StoreOpDone(Message):
    """A delete, verify or prune finished: what to tell the user."""

    text: str
    severity: str = "information"
    others_changed: bool = False  # another tool's store changed: read those stores again too


@dataclass
class FitDevices(Message):
    """The devices the fit column judges against (detected once, in a thread), or why not."""

    inventory: Any
    error: str | None = None


@dataclass
class FitJudged(Message):
    """Verdicts for one repo's quants: (group name, Verdict or why none) pairs."""

    repo: str
    results: list[tuple[str, Any]]


@dataclass
class OthersScanned(Message):
    """The other tools' stores read again (a worker thread), or why they could not be."""

    stores: Any  # gguf_tui.store.allstores.AllStores, None on error
    error: str | None = None
    rows: Any = None  # (cache key, catalog rows) built in the worker for the filter then shown
