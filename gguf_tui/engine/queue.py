"""The download queue: jobs, their states, commands in and events out.

`Engine` is the narrow interface the CLI and the TUI share: async commands (enqueue, pause,
resume, cancel, retry, move) and a stream of typed events. Progress is throttled here, a few
events per second per job, never one per chunk.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import replace
import uuid
from pathlib import Path
from typing import Callable

import aiohttp

from gguf_tui.config import Config
from gguf_tui.engine.errors import ChecksumMismatch, DownloadError, FatalDownloadError
from gguf_tui.engine.events import (
    EngineEvent,
    JobError,
    Notice,
    Progress,
    Retrying,
    StateChanged,
)
from gguf_tui.engine.fetch import FileDownload, check_fits_filesystem
from gguf_tui.engine.http import make_session
from gguf_tui.httputil import origin_of
from gguf_tui.proxy_middleware import use_routes
from gguf_tui.engine.job import EventStream, Job
from gguf_tui.engine.landing import (
    already_placed,
    gguf_problem,
    leftover_entry,
    load_manifest,
    mark_sound_elsewhere,
    os_message,
    replace_allowed,
    shared_copy,
    sweep_stale_temps,
    write_manifest,
)
from gguf_tui.engine.placement import (
    DiskFullError,
    check_free_space,
    hint_page_cache,
    rename_into_place,
    sync_file,
)
from gguf_tui.engine.ratelimit import RateLimiter
from gguf_tui.engine.ownership import OwnershipMixin, owner_word
from gguf_tui.engine.records import delete_record, load_records, save_record
from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.engine.spec import FileRequest, JobSpec, JobState
from gguf_tui.store.layout import StoreLayout, UnsafePathError
from gguf_tui.store.locks import DownloadLock, LockHeld, active_lock_owner
from gguf_tui.store.manifest import (
    SHA256_PUBLISHED,
    SHA256_RECORDED,
    Manifest,
    ManifestError,
    ManifestFile,
)
from gguf_tui.textsafe import plain, redact_url

ELSEWHERE_POLL = 2.0


class Engine(OwnershipMixin):
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

    def _manifest(self, job: Job) -> Manifest | None:
        try:
            return load_manifest(self.layout, job.name)
        except ManifestError as exc:
            self._emit(Notice(job.id, job.name, plain(str(exc))))
            return None

    def _preflight(self, job: Job, remaining: list[FileRequest]) -> None:
        needed = 0
        for request in remaining:
            if request.expected_size is None:
                continue
            check_fits_filesystem(self.layout.root, request.expected_size, request.dest)
            partial = self.layout.partial_path(request.key_hash)
            try:
                allocated = partial.stat().st_blocks * 512 if partial.exists() else 0
            except OSError:
                allocated = 0
            needed += max(0, request.expected_size - allocated)
        self._check_space(needed)

    def _check_space(self, needed: int) -> None:
        check_free_space(self.layout.root, needed, self.settings.free_space_margin)

    async def _download_job(self, job: Job) -> None:
        self._set_state(job, JobState.DOWNLOADING)
        await asyncio.to_thread(sweep_stale_temps, self.layout)
        manifest = self._manifest(job)
        placed: list[ManifestFile] = []
        remaining: list[FileRequest] = []
        recorded_now = False  # entries found in the store that the manifest does not list yet
        for request in job.spec.files:
            entry = already_placed(self.layout, request, manifest)
            if entry is not None and request.expected_sha256 and not entry.has_reference:
                # Its recorded hash now matches a published or given one: it is verified.
                entry = replace(entry, sha256_source=request.sha256_origin or SHA256_PUBLISHED)
                recorded_now = True
            if entry is None:
                entry = await self._found_in_store(job, request)
                recorded_now = recorded_now or entry is not None
            if entry is not None:
                placed.append(entry)
            else:
                remaining.append(request)
        if not remaining:
            if recorded_now:
                await _finish_uninterrupted(
                    write_manifest, self.layout, job.spec, placed, manifest
                )
            job.completed_bytes = job.bytes_done = sum(entry.size for entry in placed)
            self._finish_job_record(job)
            message = _completed_message(placed) if recorded_now else "already in the store"
            self._set_state(job, JobState.COMPLETED, message)
            return
        self._preflight(job, remaining)
        job.completed_bytes = sum(entry.size for entry in placed)
        for request in remaining:
            await self._download_file(job, request, placed, manifest)
        self._finish_job_record(job)
        job.bytes_done = job.completed_bytes
        self._set_state(job, JobState.COMPLETED, _completed_message(placed))

    async def _found_in_store(self, job: Job, request: FileRequest) -> ManifestFile | None:
        """The file when the store already holds it outside this model's manifest: another
        model's copy of the same file (shared, not downloaded twice), or a file a stopped
        download placed without recording it. Raises when a file in the way must not be
        replaced; None when the file is to be downloaded."""
        shared = shared_copy(self.layout, request, job.name)
        if shared is not None:
            self._emit(Notice(job.id, job.name, f"{request.dest}: already in the store, shared"))
            return shared
        dest = self.layout.dest_path(request.dest)
        if not os.path.lexists(dest):
            return None
        self._set_state(job, JobState.VERIFYING, f"checking {request.dest} already in the store")
        leftover = await asyncio.to_thread(
            leftover_entry, self.layout, request, request.sha256_origin or SHA256_PUBLISHED
        )
        self._set_state(job, JobState.DOWNLOADING)
        if leftover is not None:
            return leftover
        refusal = replace_allowed(self.layout, request, job.name)
        if refusal is not None:
            raise FatalDownloadError(refusal)
        return None

    async def _download_file(
        self, job: Job, request: FileRequest, placed: list[ManifestFile], old: Manifest | None
    ) -> None:
        """Download one file of the job, place it, and record it in the model's manifest."""
        if not request.auth_headers and request.auth_origin and self.auth_headers_for:
            request.auth_headers = self.auth_headers_for(request.auth_origin)
        lock = DownloadLock(self.layout.lock_path(request.key_hash), what=request.dest)
        waited = await self._acquire(job, lock)
        job.lock = lock
        try:
            dest = self.layout.dest_path(request.dest)
            if waited:
                # Another process owned this file until now: it may have finished it.
                entry = already_placed(self.layout, request, self._manifest(job))
                entry = entry or shared_copy(self.layout, request, job.name)
                if entry is not None:
                    job.completed_bytes += entry.size
                    placed.append(entry)
                    await _finish_uninterrupted(write_manifest, self.layout, job.spec, placed, old)
                    return
            while True:
                download = FileDownload(
                    request,
                    self.layout,
                    self.settings,
                    self.session,
                    self._limiter_for(job),
                    connections=job.connections or self.connections,
                    on_retry=lambda attempt, most, reason, delay: self._on_retry(
                        job, attempt, most, reason, delay
                    ),
                    on_notice=lambda message: self._emit(Notice(job.id, job.name, message)),
                    on_fresh_total=lambda total: self._check_space(total),
                )
                job.current = download
                try:
                    sha256 = await download.run()
                except ChecksumMismatch as exc:
                    download.discard_files()
                    job.checksum_failures += 1
                    if job.checksum_failures > self.settings.checksum_retries:
                        attempts = job.checksum_failures
                        raise FatalDownloadError(
                            f"{exc} (failed {attempts} attempt{'s' if attempts > 1 else ''})"
                        ) from None
                    self._on_retry(
                        job,
                        job.checksum_failures,
                        self.settings.checksum_retries,
                        "checksum mismatch: download corrupted",
                        0.0,
                    )
                    continue
                break
            self._set_state(job, JobState.VERIFYING)
            problem = await asyncio.to_thread(gguf_problem, download.partial_path)
            if problem is not None:
                download.discard_files()
                raise FatalDownloadError(f"{request.dest}: {problem}; nothing was placed")
            size = download.state.total_size or 0
            entry = ManifestFile(
                path=request.dest,
                size=size,
                sha256=sha256,
                role=request.role,
                etag=download.state.etag,
                last_modified=download.state.last_modified,
                url=redact_url(request.url),
                verified_at=time.time(),
                sha256_source=_sha256_source(request, download),
                origin=origin_of(download.source_url),
            )
            placed[:] = [other for other in placed if other.path != entry.path] + [entry]
            # fsync, rename and the manifest run in a thread and are never cut short by a pause:
            # a placed file always ends up recorded.
            await _finish_uninterrupted(self._place, job, download, dest, placed, old)
            job.completed_bytes += size
            job.current = None
            self._set_state(job, JobState.DOWNLOADING)
        finally:
            job.lock = None
            lock.release()

    async def _acquire(self, job: Job, lock: DownloadLock) -> bool:
        """Own the download; while another process has it, show 'downloading elsewhere' and wait.

        Returns whether it had to wait."""
        waiting = False
        while True:
            try:
                lock.acquire()
            except LockHeld as held:
                if not waiting:
                    self._set_state(job, JobState.ELSEWHERE, str(held))
                    waiting = True
                await asyncio.sleep(ELSEWHERE_POLL)
                continue
            if waiting:
                self._set_state(job, JobState.DOWNLOADING)
            return waiting

    def _on_retry(self, job: Job, attempt: int, most: int, reason: str, delay: float) -> None:
        job.retry_attempt, job.retry_max, job.retry_reason = attempt, most, reason
        self._emit(Retrying(job.id, job.name, attempt, most, plain(reason), delay))
        if job.state != JobState.RETRYING:
            job.state = JobState.RETRYING
            self._emit(StateChanged(job.id, job.name, JobState.RETRYING, plain(reason)))
        asyncio.get_running_loop().call_later(delay + 0.05, self._back_to_downloading, job)

    def _back_to_downloading(self, job: Job) -> None:
        if job.state == JobState.RETRYING:
            self._set_state(job, JobState.DOWNLOADING)

    def _place(
        self,
        job: Job,
        download: FileDownload,
        dest: Path,
        placed: list[ManifestFile],
        old: Manifest | None,
    ) -> None:
        """(thread) Record every file placed so far plus this one, then move the verified
        partial into place; written after each file so a second process pulling the same model
        sees its parts. The manifest goes first and the resume state last: a process stopped in
        between leaves a partial that the next pull checks and places, never a placed file that
        no manifest lists."""
        sync_file(download.partial_path)
        reading = {placed[-1].path: download.partial_path}
        write_manifest(self.layout, job.spec, placed, old, reading)
        rename_into_place(download.partial_path, dest)
        hint_page_cache(dest)
        try:
            download.state_path.unlink()
        except FileNotFoundError:
            pass
        mark_sound_elsewhere(self.layout, placed[-1], job.name)

    # ---- partials and job records ------------------------------------------------------------

    def _delete_partials(self, job: Job) -> None:
        """Delete the job's partials and state, except any another live process owns (writing
        it, or holding a job with that file in its queue)."""
        for request in job.spec.files:
            if self._other_owners(request.key_hash):
                continue  # that process's download, not ours to delete
            for path in (
                self.layout.partial_path(request.key_hash),
                self.layout.state_path(request.key_hash),
            ):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        self._finish_job_record(job)

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


RECORDED_ONLY = "SHA-256 recorded: no published hash to verify against"


def _completed_message(placed: list[ManifestFile]) -> str:
    """Empty when every file matched a published or user-given SHA-256, else RECORDED_ONLY."""
    return "" if all(entry.has_reference for entry in placed) else RECORDED_ONLY


def _sha256_source(request: FileRequest, download: FileDownload) -> str:
    """What the downloaded bytes were checked against: a published or user-given SHA-256, or
    nothing (the hash is only recorded)."""
    if not download.expected_sha256:
        return SHA256_RECORDED
    if request.expected_sha256 and request.sha256_origin:
        return request.sha256_origin
    return SHA256_PUBLISHED  # the Hub's LFS metadata or its X-Linked-Etag


async def _finish_uninterrupted(func, *args) -> None:
    """Run a blocking step in a thread; a cancellation waits for it to finish, then goes on."""
    step = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        await asyncio.shield(step)
    except asyncio.CancelledError:
        await asyncio.wait([step])
        raise
