"""The one interface between the engine and its clients (the TUI, the CLI).

Commands in, frozen job views and sequenced events out. Two implementations: `LocalEngine`
(engine/local.py, the engine in this process) and `ServiceClient` (service/client.py, the
per-user engine service over a Unix socket). Clients import this module and nothing else from
the engine, so they behave the same over either transport.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, runtime_checkable

from gguf_tui.engine.events import (
    EngineEvent,
    JobAdded,
    JobError,
    JobRemoved,
    Notice,
    OrderChanged,
    Progress,
    Retrying,
    StateChanged,
    StateReason,
    event_from_json,
)
from gguf_tui.engine.spec import JobState
from gguf_tui.engine.views import CancelPreview, FileView, JobView, ResumeView

__all__ = [
    "CancelPreview",
    "CommandError",
    "EngineAPI",
    "EngineEvent",
    "ErrorKind",
    "FileView",
    "HubSettings",
    "JobAdded",
    "JobError",
    "JobRemoved",
    "JobState",
    "JobView",
    "Notice",
    "OrderChanged",
    "Progress",
    "PullOptions",
    "ResumeView",
    "Retrying",
    "Snapshot",
    "StateChanged",
    "StateReason",
    "Subscription",
    "apply_event",
    "event_from_json",
    "partials_on_disk",
    "QueueMirror",
    "settled",
]


class ErrorKind(str, enum.Enum):
    """What kind of refusal a command met, so a CLI picks the exit code without parsing text."""

    USAGE = "usage"  # bad arguments: exit 2
    REFUSED = "refused"  # the REF cannot be resolved, unsafe path, Hub error: exit 1
    NOT_FOUND = "not_found"  # no job with that id: exit 1
    FAILED = "failed"  # anything else the engine could not do: exit 1


class CommandError(Exception):
    """A command the engine refused, with one line for the user and its kind."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class HubSettings:
    """The asking client's Hub endpoint, token and proxy settings; the token and the proxy
    settings (which may hold proxy credentials) are used for that job only, in memory.

    `repr` hides the token and the proxy settings so they cannot reach a log or a traceback.
    `proxy` is `gguf_tui.proxies.client_settings()`; None: the engine's own settings.
    """

    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    proxy: dict | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"endpoint": self.endpoint, "token": self.token, "proxy": self.proxy}

    @classmethod
    def of_client(cls, config: Any, endpoint: str | None = None) -> HubSettings:
        """What this process (a CLI command or a dashboard) sends with a pull: its endpoint
        (`endpoint`, else the config's), its token and its proxy settings, so the service
        resolves and downloads as this client would, whichever shell started the service."""
        from gguf_tui.hub.auth import get_token
        from gguf_tui.proxies import client_settings

        return cls(
            endpoint=endpoint or config.hub.endpoint, token=get_token(), proxy=client_settings(config)
        )

    @classmethod
    def from_json(cls, data: dict | None) -> HubSettings:
        data = data or {}
        proxy = data.get("proxy")
        return cls(
            endpoint=data.get("endpoint"),
            token=data.get("token"),
            proxy=proxy if isinstance(proxy, dict) else None,
        )


@dataclass(frozen=True)
class PullOptions:
    """The options of `gguf-tui pull` that shape one enqueued REF."""

    sha256: str | None = None
    name: str | None = None
    no_mmproj: bool = False
    connections: int | None = None
    max_rate: int | None = None  # bytes per second
    paused: bool = False

    def to_json(self) -> dict:
        return {
            "sha256": self.sha256,
            "name": self.name,
            "no_mmproj": self.no_mmproj,
            "connections": self.connections,
            "max_rate": self.max_rate,
            "paused": self.paused,
        }

    @classmethod
    def from_json(cls, data: dict | None) -> PullOptions:
        data = data or {}
        return cls(
            sha256=data.get("sha256"),
            name=data.get("name"),
            no_mmproj=bool(data.get("no_mmproj")),
            connections=data.get("connections"),
            max_rate=data.get("max_rate"),
            paused=bool(data.get("paused")),
        )


@dataclass(frozen=True)
class Snapshot:
    """The whole queue, in order, as of event `seq`."""

    seq: int
    jobs: tuple[JobView, ...]

    def get(self, job_id: int) -> JobView | None:
        return next((job for job in self.jobs if job.id == job_id), None)

    def to_json(self) -> dict:
        return {"seq": self.seq, "jobs": [job.to_json() for job in self.jobs]}

    @classmethod
    def from_json(cls, data: dict) -> Snapshot:
        return cls(int(data["seq"]), tuple(JobView.from_json(job) for job in data["jobs"]))


class Subscription(Protocol):
    """A snapshot, then every later event in order: `async for event in subscription`.

    Progress may be coalesced (latest per job), so seq can skip; nothing else is skipped.
    The iteration ends when the engine goes away (the service stopped or dropped this client).
    """

    snapshot: Snapshot

    def __aiter__(self) -> AsyncIterator[EngineEvent]: ...

    async def close(self) -> None: ...


@runtime_checkable
class EngineAPI(Protocol):
    """What a client may do to the engine and see of it."""

    async def enqueue(
        self, ref: str, options: PullOptions = PullOptions(), hub: HubSettings = HubSettings()
    ) -> int:
        """Resolve REF (engine side, with the client's hub settings) into one job; its id.

        Enqueuing a model that is already queued returns that job's id."""
        ...

    async def pause(self, job_id: int) -> None: ...

    async def resume(self, job_id: int) -> None: ...

    async def cancel_preview(self, job_id: int) -> CancelPreview:
        """What `cancel` would do (refused, delete the partial, or keep it for its owner)."""
        ...

    async def job(self, job_id: int) -> JobView:
        """One job's view with its resume state read now (bytes, ranges, validator, saved-at)."""
        ...

    async def cancel(self, job_id: int) -> None: ...

    async def retry(self, job_id: int) -> None: ...

    async def move(self, job_id: int, delta: int) -> None:
        """Up (negative) or down (positive) in the queue order."""
        ...

    async def remove(self, job_id: int) -> None:
        """Forget a finished (completed, failed, cancelled) job."""
        ...

    async def pause_all(self) -> list[int]:
        """Pause every queued or running job; the ids paused."""
        ...

    async def snapshot(self) -> Snapshot: ...

    async def subscribe(self) -> Subscription: ...

    async def close(self) -> None:
        """Let go of the engine: detaches a service client; stops (pausing) a local engine."""
        ...


def partials_on_disk(store_root) -> list[dict]:
    """The partial downloads in a store and their saved resume state, read from disk (for
    `status` when no engine runs, and for partials no live job owns); JSON-ready rows."""
    from gguf_tui.engine.disk_partials import partial_rows

    return partial_rows(store_root)


def apply_event(jobs: dict[int, JobView], order: list[int], event: EngineEvent) -> None:
    """Fold one event into a client's copy of the queue (views by id, and the order).

    The one place that says how events change views, for the TUI, `pull` and the tests."""
    from dataclasses import replace

    view = jobs.get(event.job_id)
    if isinstance(event, JobAdded):
        jobs[event.job_id] = event.view
        if event.job_id not in order:
            order.append(event.job_id)
    elif isinstance(event, JobRemoved):
        jobs.pop(event.job_id, None)
        if event.job_id in order:
            order.remove(event.job_id)
    elif isinstance(event, OrderChanged):
        order[:] = [job_id for job_id in event.order if job_id in jobs]
    elif view is None:
        return
    elif isinstance(event, StateChanged):
        changes: dict = {"state": event.state, "message": event.message}
        if event.state != JobState.RETRYING:
            changes.update(retry_attempt=0, retry_max=0, retry_reason="")
        if not event.state.is_active:
            changes.update(speed=0.0, eta=None)
        if event.bytes_done is not None:
            changes.update(bytes_done=event.bytes_done, total=event.total)
        elif event.state == JobState.COMPLETED and view.total:
            changes.update(bytes_done=view.total)  # an engine that does not say: all of it
        elif event.state == JobState.CANCELLED:
            changes.update(bytes_done=0)  # its partial is gone
        jobs[event.job_id] = replace(view, **changes)
    elif isinstance(event, Progress):
        jobs[event.job_id] = replace(
            view,
            bytes_done=event.bytes_done,
            total=event.total,
            speed=event.speed,
            eta=event.eta,
            phase=event.phase,
        )
    elif isinstance(event, Retrying):
        jobs[event.job_id] = replace(
            view,
            state=JobState.RETRYING,
            retry_attempt=event.attempt,
            retry_max=event.max_attempts,
            retry_reason=event.reason,
        )


def settled(view: JobView) -> bool:
    """Finished, or paused (a pause from any client ends a `pull` that follows the job)."""
    return view.state.is_final or view.state == JobState.PAUSED


class QueueMirror:
    """A client's live copy of the queue: a subscription's snapshot with every event folded in.

    Iterate `mirror.events()` (or call `follow`) instead of the subscription itself, so the
    copy stays current; `views()` is then the queue in order, as the engine has it."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.jobs: dict[int, JobView] = {view.id: view for view in subscription.snapshot.jobs}
        self.order: list[int] = [view.id for view in subscription.snapshot.jobs]
        self.seq = subscription.snapshot.seq

    def apply(self, event: EngineEvent) -> None:
        apply_event(self.jobs, self.order, event)
        self.seq = max(self.seq, event.seq)

    def views(self) -> list[JobView]:
        return [self.jobs[job_id] for job_id in self.order if job_id in self.jobs]

    async def events(self) -> AsyncIterator[EngineEvent]:
        """Every event, already folded into the copy when it is yielded."""
        async for event in self.subscription:
            self.apply(event)
            yield event

    async def follow(self, job_ids: list[int], done=settled, on_event=None) -> dict[int, JobView]:
        """Wait until every job in `job_ids` is `done`; their views. `on_event` sees each event.

        CommandError when one is removed, or when the stream ends (the engine went away)."""

        def finished() -> bool:
            return all(job_id in self.jobs and done(self.jobs[job_id]) for job_id in job_ids)

        if finished():
            return {job_id: self.jobs[job_id] for job_id in job_ids}
        async for event in self.events():
            if on_event is not None:
                on_event(event)
            if isinstance(event, JobRemoved) and event.job_id in job_ids:
                raise CommandError(f"download {event.job_id} was removed", ErrorKind.FAILED)
            if finished():
                return {job_id: self.jobs[job_id] for job_id in job_ids}
        raise CommandError("the engine went away before the downloads finished", ErrorKind.FAILED)
