"""`LocalEngine`: the engine interface (engine/api.py) implemented in this process.

It wraps the download queue (`engine.queue.Engine`), numbers its events, adds the events the
queue does not emit itself (job added, job removed, order changed, typed reasons), and turns
live jobs into frozen views. The service runs one of these and forwards it over its socket.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import AsyncIterator, Callable

from gguf_tui.config import Config
from gguf_tui.engine.api import (
    CommandError,
    ErrorKind,
    HubSettings,
    PullOptions,
    Snapshot,
)
from gguf_tui.engine.errors import DownloadError, FatalDownloadError
from gguf_tui.engine.events import (
    EngineEvent,
    JobAdded,
    JobRemoved,
    Notice,
    OrderChanged,
    StateChanged,
    StateReason,
)
from gguf_tui.engine.job import Job
from gguf_tui.engine.queue import Engine
from gguf_tui.engine.resolve import resolve_spec
from gguf_tui.engine.spec import JobState
from gguf_tui.engine.views import CancelPreview, FileView, JobView, ResumeView
from gguf_tui.fsutil import load_json_file, write_json_atomic

Listener = Callable[[EngineEvent], None]

ALREADY_IN_STORE = "already in the store"  # the queue's message for a job with nothing to fetch
MOVED = "moved"  # the queue's message for a reorder
WANTED_FILE = "engine-wanted.json"  # names of jobs to start again when the service restarts
WANTED_STATES = (JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING, JobState.VERIFYING,
                 JobState.ELSEWHERE)  # fmt: skip


class _Sink:
    """Stands in for an event stream's queue: the queue calls `put_nowait` for every event, in
    order, and this hands each one on at once, so no event can overtake another."""

    def __init__(self, handle: Listener) -> None:
        self._handle = handle

    def put_nowait(self, event: EngineEvent) -> None:
        self._handle(event)

    def empty(self) -> bool:
        return True


class LocalSubscription:
    """A snapshot and then every event, through an unbounded in-process queue."""

    def __init__(self, owner: LocalEngine, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._owner = owner
        self._queue: asyncio.Queue[EngineEvent | None] = asyncio.Queue()

    def push(self, event: EngineEvent) -> None:
        self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[EngineEvent]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        self._owner.remove_listener(self.push)
        self.end()


def job_view(job: Job, root: str, resume: dict[str, ResumeView] | None = None) -> JobView:
    """A frozen view of a live job; `resume` maps a file's dest to its saved resume state."""
    resume = resume or {}
    files = tuple(
        FileView(
            dest=request.dest,
            role=request.role,
            expected_size=request.expected_size,
            expected_sha256=request.expected_sha256,
            resume=resume.get(request.dest),
            key_hash=request.key_hash,
        )
        for request in job.spec.files
    )
    return JobView(
        id=job.id,
        name=job.name,
        state=job.state,
        message=job.message,
        bytes_done=job.bytes_done,
        total=job.total,
        speed=job.speed,
        eta=job.eta,
        phase=job.phase,
        retry_attempt=job.retry_attempt if job.state == JobState.RETRYING else 0,
        retry_max=job.retry_max if job.state == JobState.RETRYING else 0,
        retry_reason=job.retry_reason,
        dest=root,
        created_at=job.created_at,
        files=files,
        source=dict(job.spec.source),
        owner_user=job.owner.user_name if job.owner is not None and job.owner.other_user else "",
    )


class LocalEngine:
    """The engine interface over an in-process download queue.

    `resume_interrupted`: on start, jobs that were running or queued when the previous engine
    stopped (killed, SIGTERM) start again; jobs a client paused stay paused. The service sets
    it; an in-process engine restores everything paused, as the dashboard always did.
    """

    def __init__(
        self,
        config: Config,
        *,
        restore: bool = False,
        resume_interrupted: bool = False,
        connections: int | None = None,
        max_rate: int | None = None,
        auth_headers_for: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.queue = Engine(
            config, connections=connections, max_rate=max_rate, auth_headers_for=auth_headers_for
        )
        self._restore = restore
        self._resume_interrupted = resume_interrupted
        self._seq = 0
        self._known: set[int] = set()
        self._reasons: dict[int, StateReason] = {}  # the reason of a command in flight, per job
        self._listeners: list[Listener] = []
        self._wanted: set[str] | None = None
        self._stopping = False
        self._root = str(config.store)
        self._wanted_path = config.hidden_dir / WANTED_FILE

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> list[int]:
        """Start the queue, restore earlier jobs when asked; the ids restored."""
        await self.queue.start()
        stream = self.queue.subscribe()
        stream.queue = _Sink(self._on_queue_event)  # type: ignore[assignment]
        if not self._restore:
            return []
        wanted = self._read_wanted() if self._resume_interrupted else set()
        restored = await self.queue.restore_jobs()
        for job_id in restored:
            job = self.queue.get(job_id)
            if job.name in wanted and job.state == JobState.PAUSED:
                self._reasons[job_id] = StateReason.RESTORED
                await self.queue.resume(job_id)
        return restored

    async def __aenter__(self) -> LocalEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        """Pause every running download (resume state saved) and end every subscription."""
        self._stopping = True
        await self.queue.close()
        for listener in list(self._listeners):
            owner = getattr(listener, "__self__", None)
            if isinstance(owner, LocalSubscription):
                owner.end()
        self._listeners.clear()

    # ---- events ------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` with every numbered event, synchronously and in order."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def subscribe(self) -> LocalSubscription:
        subscription = LocalSubscription(self, self._snapshot())
        self.add_listener(subscription.push)
        return subscription

    def _publish(self, event: EngineEvent) -> None:
        self._seq += 1
        event = replace(event, seq=self._seq)
        for listener in list(self._listeners):
            listener(event)

    def _on_queue_event(self, event: EngineEvent) -> None:
        try:
            job: Job | None = self.queue.get(event.job_id)
        except KeyError:
            job = None  # job id 0 (queue-wide notices), or a job removed meanwhile
        if job is not None and event.job_id not in self._known:
            self._known.add(event.job_id)
            self._publish(JobAdded(job.id, view=job_view(job, self._root)))
        if isinstance(event, StateChanged):
            if event.message == MOVED and job is not None:
                self._publish(OrderChanged(job.id, order=tuple(queued.id for queued in self.queue.jobs())))
                return
            event = replace(event, reason=self._reason_for(event))
            if job is not None:
                event = replace(event, bytes_done=job.bytes_done, total=job.total)
            self._note_wanted()
        self._publish(event)

    def _reason_for(self, event: StateChanged) -> StateReason:
        asked = self._reasons.pop(event.job_id, None)
        if event.state == JobState.COMPLETED and event.message == ALREADY_IN_STORE:
            return StateReason.ALREADY_IN_STORE
        if event.state == JobState.ELSEWHERE or event.message.startswith(
            ("downloading elsewhere", "downloading (user ")  # another user's: LockOwner.label
        ):
            return StateReason.ELSEWHERE
        if event.state == JobState.PAUSED and "free some space" in event.message:
            return StateReason.DISK_FULL
        if asked is not None:
            return asked
        if event.state == JobState.PAUSED and self._stopping:
            return StateReason.SHUTDOWN
        return StateReason.NONE

    # ---- what to start again after a restart ------------------------------------------------

    def _read_wanted(self) -> set[str]:
        try:
            names = load_json_file(self._wanted_path).get("names", [])
            return {str(name) for name in names}
        except (OSError, ValueError, AttributeError, TypeError):
            return set()

    def _note_wanted(self) -> None:
        """Record which jobs want to run; an engine stopping keeps the record as it was, so a
        restart resumes what the stop paused."""
        if not self._resume_interrupted or self._stopping:
            return
        wanted = {job.name for job in self.queue.jobs() if job.state in WANTED_STATES}
        if wanted != self._wanted:
            self._wanted = wanted
            try:
                write_json_atomic(self._wanted_path, {"names": sorted(wanted)})
            except OSError:
                pass  # only a convenience: the jobs come back paused instead

    # ---- views -------------------------------------------------------------------------------

    def _resume_views(self, job: Job) -> dict[str, ResumeView]:
        views = {}
        for state in self.queue.resume_states(job):
            views[state.dest] = ResumeView(
                bytes_done=state.bytes_done,
                total=state.total_size,
                ranges=tuple((int(start), int(end)) for start, end in state.ranges),
                validator=state.validator,
                saved_at=state.saved_at,
            )
        return views

    def _snapshot(self) -> Snapshot:
        views = tuple(
            job_view(job, self._root, self._resume_views(job)) for job in self.queue.jobs()
        )
        return Snapshot(self._seq, views)

    async def snapshot(self) -> Snapshot:
        return self._snapshot()

    def active_count(self) -> int:
        """Jobs running or waiting to run (the service stays up while there are any)."""
        return sum(1 for job in self.queue.jobs() if job.state in WANTED_STATES)

    # ---- commands ----------------------------------------------------------------------------

    def _job(self, job_id: int) -> Job:
        try:
            return self.queue.get(job_id)
        except KeyError:
            raise CommandError(f"no download with id {job_id}", ErrorKind.NOT_FOUND) from None

    async def enqueue(
        self, ref: str, options: PullOptions = PullOptions(), hub: HubSettings = HubSettings()
    ) -> int:
        spec = await resolve_spec(ref, options, hub, self.config, self.queue.session)
        try:
            job_id = await self.queue.enqueue(spec, paused=options.paused)
        except FatalDownloadError as exc:
            raise CommandError(str(exc), ErrorKind.REFUSED) from None
        # The asking client's connections and rate limit shape its own job only (they apply
        # from the job's next file or resume when it was already queued).
        job = self.queue.get(job_id)
        if options.connections is not None:
            job.connections = options.connections
        if options.max_rate is not None:
            job.max_rate = options.max_rate
        return job_id

    async def cancel_preview(self, job_id: int) -> CancelPreview:
        self._job(job_id)
        preview = self.queue.cancel_preview(job_id)
        return CancelPreview(preview.refused, preview.deletes_partial, preview.kept_for)

    async def job(self, job_id: int) -> JobView:
        """One job's view with its resume state read now (the detail pane's live numbers)."""
        job = self._job(job_id)
        return job_view(job, self._root, self._resume_views(job))

    async def pause(self, job_id: int) -> None:
        await self._as_user(job_id, self.queue.pause)

    async def resume(self, job_id: int) -> None:
        await self._as_user(job_id, self.queue.resume)

    async def cancel(self, job_id: int) -> None:
        await self._as_user(job_id, self.queue.cancel)

    async def retry(self, job_id: int) -> None:
        await self._as_user(job_id, self.queue.retry)

    async def _as_user(self, job_id: int, command) -> None:
        """Run a queue command whose state changes carry the reason USER."""
        self._job(job_id)
        self._reasons[job_id] = StateReason.USER
        try:
            await command(job_id)
        except DownloadError as exc:  # e.g. another process owns the job: a refusal, one line
            raise CommandError(str(exc), ErrorKind.REFUSED) from None
        finally:
            self._reasons.pop(job_id, None)  # the state changes it caused are emitted by now

    async def move(self, job_id: int, delta: int) -> None:
        self._job(job_id)
        try:
            await self.queue.move(job_id, int(delta))
        except DownloadError as exc:
            raise CommandError(str(exc), ErrorKind.REFUSED) from None

    async def remove(self, job_id: int) -> None:
        job = self._job(job_id)
        if not job.state.is_final:
            raise CommandError(
                f"download {job_id} is {job.state.value}: cancel it first", ErrorKind.FAILED
            )
        await self.queue.remove(job_id)
        self._known.discard(job_id)
        self._publish(JobRemoved(job_id))

    async def pause_all(self) -> list[int]:
        paused = []
        for job in self.queue.jobs():
            if job.state in WANTED_STATES:
                await self.pause(job.id)
                paused.append(job.id)
        return paused

    def notice(self, message: str) -> None:
        """An engine-wide notice (job id 0) to every client."""
        self._publish(Notice(0, "engine", message))
