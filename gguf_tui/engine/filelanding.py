"""Landing a job's files: what the store already holds, each file's download, its lock, and
placing it with its manifest entry; the file half of `Engine` (queue.py), which holds the jobs,
their states and the events."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

from gguf_tui.engine.errors import ChecksumMismatch, FatalDownloadError
from gguf_tui.engine.events import Notice, Retrying, StateChanged
from gguf_tui.engine.fetch import FileDownload, check_fits_filesystem
from gguf_tui.httputil import origin_of
from gguf_tui.engine.job import Job
from gguf_tui.engine.landing import (
    already_placed,
    gguf_problem,
    leftover_entry,
    load_manifest,
    mark_sound_elsewhere,
    replace_allowed,
    shared_copy,
    sweep_stale_temps,
    write_manifest,
)
from gguf_tui.engine.placement import (
    check_free_space,
    hint_page_cache,
    rename_into_place,
    sync_file,
)
from gguf_tui.engine.spec import FileRequest, JobState
from gguf_tui.store.locks import DownloadLock, LockHeld
from gguf_tui.store.manifest import (
    SHA256_PUBLISHED,
    SHA256_RECORDED,
    Manifest,
    ManifestError,
    ManifestFile,
)
from gguf_tui.textsafe import plain, redact_url


ELSEWHERE_POLL = 2.0  # seconds between looks at a download another process owns


class FileLandingMixin:
    """Engine methods that turn a job's file requests into verified files in the store."""

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
