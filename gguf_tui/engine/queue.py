"""The download queue: jobs, their states, commands in and events out.

`Engine` is the narrow interface the CLI and the TUI share: async commands (enqueue, pause,
resume, cancel, retry, move) and a stream of typed events. Progress is throttled here, a few
events per second per job, never one per chunk.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Callable

import aiohttp

from gguf_tui.config import Config
from gguf_tui.engine.errors import DownloadError, FatalDownloadError
from gguf_tui.engine.events import EngineEvent, JobError, Notice, Progress, StateChanged
from gguf_tui.engine.http import make_session
from gguf_tui.proxy_middleware import use_routes
from gguf_tui.engine.job import EventStream, Job
from gguf_tui.engine.landing import os_message
from gguf_tui.engine.placement import DiskFullError
from gguf_tui.engine.ratelimit import RateLimiter
from gguf_tui.engine.filelanding import FileLandingMixin
from gguf_tui.engine.ownership import OwnershipMixin, owner_word
from gguf_tui.engine.records import delete_record, load_records, save_record
from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.engine.spec import JobSpec, JobState
from gguf_tui.store.layout import StoreLayout, UnsafePathError
from gguf_tui.store.locks import active_lock_owner
from gguf_tui.textsafe import plain


class Engine(FileLandingMixin, OwnershipMixin):
    def __init__(
        self,
        config: Config,
        *,
        session: aiohttp.ClientSession | None = None,
        connections: int | None = None,
        max_rate: int | None = None,
        auth_headers_for: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.downloads
        self.layout = StoreLayout(config.store)
        self.connections = connections or self.settings.connections
        self.limiter = RateLimiter(max_rate if max_rate is not None else self.settings.max_rate)
        self.auth_headers_for = auth_headers_for
        self._session = session
        self._owns_session = session is None
        self._jobs: dict[int, Job] = {}
        self._order: list[int] = []
        self._ids = itertools.count(1)
        self._subscribers: set[EventStream] = set()
        self._closed = False
        self._token = uuid.uuid4().hex  # tells this engine's locks from another's in one process
        self._watcher: asyncio.Task | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def start(self) -> None:
        self.layout.ensure()
        if self._session is None:
            self._session = make_session(self.config)
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch_ownership())

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Engine.start() first"
        return self._session

    async def close(self) -> None:
        """Pause every running job (saving resume state) and release the session."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait([self._watcher])
        await self.shutdown()
        for job in self._jobs.values():
            self._release(job)  # paused and saved: any process may adopt them now
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def shutdown(self) -> None:
        running = [job for job in self._jobs.values() if job.task and not job.task.done()]
        for job in running:
            job.wanted_state = JobState.PAUSED
            job.task.cancel()  # type: ignore[union-attr]
        for job in running:
            await asyncio.wait([job.task])  # type: ignore[list-item]

    # ---- events ------------------------------------------------------------------------------

    def subscribe(self) -> EventStream:
        stream = EventStream(self._subscribers.discard)
        self._subscribers.add(stream)
        return stream

    def _emit(self, event: EngineEvent) -> None:
        for stream in list(self._subscribers):
            stream.queue.put_nowait(event)

    def _set_state(self, job: Job, state: JobState, message: str = "") -> None:
        job.state = state
        job.message = message
        if state != JobState.RETRYING:
            job.retry_reason = ""
        if job.owner_lock is not None:
            job.owner_lock.set_state(owner_word(state))
        self._emit(StateChanged(job.id, job.name, state, message))

    # ---- queries -----------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        return [self._jobs[job_id] for job_id in self._order]

    def get(self, job_id: int) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no download with id {job_id}") from None

    def _limiter_for(self, job: Job):
        """The shared rate limit, plus the job's own when its client asked for one."""
        if not job.max_rate:
            return self.limiter
        from gguf_tui.engine.ratelimit import JobRateLimiter, RateLimiter

        return JobRateLimiter(RateLimiter(job.max_rate), self.limiter)

    def resume_states(self, job: Job) -> list[ResumeState]:
        states = []
        for request in job.spec.files:
            try:
                states.append(ResumeState.load(self.layout.state_path(request.key_hash)))
            except ResumeStateError:
                continue
        return states

    # ---- commands ----------------------------------------------------------------------------

    async def enqueue(self, spec: JobSpec, *, paused: bool = False) -> int:
        for request in spec.files:
            try:
                self.layout.dest_path(request.dest)
            except UnsafePathError as exc:
                raise FatalDownloadError(str(exc)) from None
        for job in self._jobs.values():
            if job.spec.name == spec.name and not job.state.is_final:
                if not paused and self._view_only(job):
                    self._set_state(job, JobState.QUEUED)  # asked for here: wait for its owner
                    self._schedule()
                return job.id
        job = Job(next(self._ids), spec, total=spec.total_size)
        self._jobs[job.id] = job
        self._order.append(job.id)
        if self._claim(job):
            self._save_job_record(job)
            self._set_state(job, JobState.PAUSED if paused else JobState.QUEUED)
        elif paused:
            self._follow_owner(job)  # another process's job: shown, not touched
        else:
            self._set_state(job, JobState.QUEUED)  # its runner waits for the owner to let go
        self._schedule()
        return job.id

    async def pause(self, job_id: int) -> None:
        job = self.get(job_id)
        self._refuse_if_elsewhere(job, "pause")
        if job.state == JobState.QUEUED:
            self._set_state(job, JobState.PAUSED)
            return
        if job.task and not job.task.done():
            job.wanted_state = JobState.PAUSED
            job.task.cancel()
            await asyncio.wait([job.task])

    async def resume(self, job_id: int) -> None:
        job = self.get(job_id)
        self._refuse_if_elsewhere(job, "resume")
        if job.state == JobState.PAUSED:
            self._set_state(job, JobState.QUEUED)
            self._schedule()

    async def cancel(self, job_id: int) -> None:
        """Stop the download and delete its partial files and state (next time starts from 0).

        Refused for another process's job; partials another live process owns are kept."""
        job = self.get(job_id)
        self._refuse_if_elsewhere(job, "cancel")
        if job.state == JobState.COMPLETED:
            return
        if job.task and not job.task.done():
            job.wanted_state = JobState.CANCELLED
            job.task.cancel()
            await asyncio.wait([job.task])
        else:
            self._delete_partials(job)
            self._set_state(job, JobState.CANCELLED)
        self._schedule()

    async def retry(self, job_id: int) -> None:
        job = self.get(job_id)
        self._refuse_if_elsewhere(job, "retry")
        if job.state in (JobState.FAILED, JobState.CANCELLED, JobState.PAUSED):
            job.checksum_failures = 0
            self._save_job_record(job)
            self._set_state(job, JobState.QUEUED)
            self._schedule()

    async def move(self, job_id: int, delta: int) -> None:
        """Move a download up (negative) or down (positive) in the queue order."""
        index = self._order.index(job_id)
        new_index = max(0, min(len(self._order) - 1, index + delta))
        self._order.insert(new_index, self._order.pop(index))
        self._emit(StateChanged(job_id, self.get(job_id).name, self.get(job_id).state, "moved"))
        self._schedule()

    async def remove(self, job_id: int) -> None:
        """Forget a finished download (completed, failed or cancelled) from the list."""
        job = self.get(job_id)
        self._refuse_if_elsewhere(job, "remove")
        if job.state.is_final:
            if job.state != JobState.COMPLETED:
                self._delete_partials(job)  # also its queue record: it must not come back
            self._release(job)
            self._order.remove(job_id)
            del self._jobs[job_id]

    async def wait(self, job_id: int) -> Job:
        """Wait until the job is completed, failed, cancelled, or paused."""
        job = self.get(job_id)
        while True:
            if job.task is not None and not job.task.done():
                await asyncio.wait([job.task])
                continue
            if job.state in (JobState.QUEUED,):
                await asyncio.sleep(0.05)
                continue
            return job

    # ---- scheduling --------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._closed:
            return
        running = sum(1 for job in self._jobs.values() if job.task and not job.task.done())
        for job_id in self._order:
            if running >= self.settings.concurrency:
                break
            job = self._jobs[job_id]
            if job.state == JobState.QUEUED and (job.task is None or job.task.done()):
                job.wanted_state = None
                job.task = asyncio.ensure_future(self._run_job(job))
                job.task.add_done_callback(lambda _t: self._schedule())
                running += 1

    # ---- running one job ---------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        use_routes(job.spec.proxy_routes)  # this task's requests: the asking client's proxy
        ticker = asyncio.ensure_future(self._tick(job))
        try:
            if job.owner_lock is None:
                await self._wait_for_ownership(job)
            await self._download_job(job)
        except asyncio.CancelledError:
            wanted = job.wanted_state or JobState.PAUSED
            if job.current is not None:
                if wanted == JobState.CANCELLED:
                    job.current.discard_files()
                else:
                    job.current.save_state()
            if wanted == JobState.CANCELLED:
                self._delete_partials(job)
                self._set_state(job, JobState.CANCELLED)
            else:
                self._set_state(job, JobState.PAUSED)
        except DiskFullError as exc:
            if job.current is not None:
                job.current.save_state()
            kept = any(state.bytes_done for state in self.resume_states(job))
            keeping = "the partial is kept: " if kept else ""
            message = f"{exc}; {keeping}free some space, then resume"
            self._emit(JobError(job.id, job.name, message))
            self._set_state(job, JobState.PAUSED, message)
        except (DownloadError, OSError) as exc:
            if job.current is not None and job.current.state_path.exists():
                job.current.save_state()
            if not any(state.bytes_done for state in self.resume_states(job)):
                self._delete_partials(job)  # nothing worth keeping for a retry
            message = plain(str(exc)) if isinstance(exc, DownloadError) else os_message(exc)
            self._emit(JobError(job.id, job.name, message))
            self._set_state(job, JobState.FAILED, message)
        finally:
            ticker.cancel()
            job.current = None
            job.speed = 0.0
            job.eta = None

    async def _tick(self, job: Job) -> None:
        interval = 1.0 / max(1.0, self.config.engine.refresh_rate)
        last_bytes, last_time = None, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            if job.lock is not None:
                job.lock.heartbeat()  # keeps other processes from taking the download over
            download = job.current
            if download is None or job.state not in (JobState.DOWNLOADING, JobState.RETRYING):
                last_bytes = None
                continue
            done = job.completed_bytes + download.bytes_done
            now = time.monotonic()
            if last_bytes is not None and now > last_time:
                instant = max(0.0, (done - last_bytes) / (now - last_time))
                job.speed = instant if job.speed == 0 else 0.7 * job.speed + 0.3 * instant
            last_bytes, last_time = done, now
            total = job.spec.total_size or (
                job.completed_bytes + download.total if download.total else None
            )
            job.bytes_done, job.total = done, total
            job.eta = (total - done) / job.speed if total and job.speed > 0 else None
            rechecking = download.hashed < download.rechecking_until
            job.phase = "re-checking" if rechecking else "downloading"
            self._emit(
                Progress(
                    job.id,
                    job.name,
                    done,
                    total,
                    job.speed,
                    job.eta,
                    job.phase,
                    download.request.dest,
                )
            )

    def _save_job_record(self, job: Job) -> None:
        save_record(self.layout, job.spec, job.created_at)

    def _finish_job_record(self, job: Job) -> None:
        """The job is done with: its queue record goes, and so does this engine's claim on it.
        A record this engine does not own is another process's and stays."""
        if job.owner_lock is None:
            return
        delete_record(self.layout, job.name)
        self._release(job)

    async def restore_jobs(self) -> list[int]:
        """Add downloads left by earlier runs (interrupted or paused) to the queue, paused.

        A download another live process has in its queue is listed as that process's
        ("queued elsewhere", live progress) and not returned; it is adopted when its owner exits."""
        restored = []
        stored, problems = load_records(self.layout)
        for problem in problems:
            self._emit(Notice(0, "queue", problem))
        for record in stored:
            spec = record.spec
            if any(job.spec.name == spec.name for job in self._jobs.values()):
                continue
            job_id = await self.enqueue(spec, paused=True)
            job = self.get(job_id)
            job.created_at = record.created_at or job.created_at
            if job.owner_lock is None:
                continue
            self._save_job_record(job)  # keeps its first creation time
            job.bytes_done = self._bytes_on_disk(job)
            for request in spec.files:
                owner = active_lock_owner(self.layout.lock_path(request.key_hash))
                if owner is not None and not self._is_ours(owner):
                    job.message = f"{owner.label} ({owner.describe()})"
                    self._emit(StateChanged(job.id, job.name, job.state, job.message))
                    break
            restored.append(job_id)
        return restored
