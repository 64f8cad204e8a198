"""Who owns a download across processes sharing one store, for the engine.

A job belongs to the engine whose queue holds it (queued, running, paused or failed there): that
engine holds the job's owner lock (`records.owner_lock_path`) until the job is finished or
forgotten, or the engine closes. Another engine lists such a job as someone else's: it shows the
owner's word and live progress from the saved resume state, refuses commands on it, and adopts
it once the owner is gone (exited, or dead: a pid that no longer names the process that took the
lock). A job asked for in an engine while another owns it waits for that owner.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from gguf_tui.engine.events import Notice, Progress
from gguf_tui.engine.job import (
    CancelPreview,
    Job,
    OwnedElsewhere,
    elsewhere_phase,
    owner_label,
    owner_words,
)
from gguf_tui.engine.landing import already_placed, load_manifest, os_message
from gguf_tui.engine.records import owner_lock_path, record_exists
from gguf_tui.engine.spec import JobState
from gguf_tui.store.locks import DownloadLock, LockHeld, LockOwner, deletion_blockers
from gguf_tui.store.manifest import ManifestError

if TYPE_CHECKING:
    from gguf_tui.engine.queue import Engine

OTHERS_POLL = 1.0  # how often other processes' jobs are re-read (progress, owner still alive)


class OwnershipMixin:
    """The engine's side of job ownership (kept apart so `queue.py` stays about the queue)."""

    def cancel_preview(self: Engine, job_id: int) -> CancelPreview:
        """What `cancel` would do to this job: refused, delete its partial, or keep it for its
        owner (so a confirmation never promises a deletion that will not happen)."""
        job = self.get(job_id)
        if self._view_only(job):
            owner = job.owner
            return CancelPreview(
                refused=str(OwnedElsewhere(job, "cancel")),
                deletes_partial=False,
                kept_for=owner_words(owner) if owner else "another process",
            )
        deletes, kept_for = False, ""
        for request in job.spec.files:
            others = self._other_owners(request.key_hash)
            if others:
                kept_for = kept_for or owner_words(others[0])
            elif self.layout.partial_path(request.key_hash).exists():
                deletes = True
        return CancelPreview(deletes_partial=deletes, kept_for=kept_for)

    def _bytes_on_disk(self: Engine, job: Job) -> int:
        """Placed files plus saved resume state: what a restart, or another process, would see."""
        try:
            manifest = load_manifest(self.layout, job.name)
        except ManifestError:
            manifest = None
        placed = sum(
            entry.size
            for request in job.spec.files
            if (entry := already_placed(self.layout, request, manifest)) is not None
        )
        return placed + sum(state.bytes_done for state in self.resume_states(job))

    def _is_ours(self: Engine, owner: LockOwner) -> bool:
        """A lock of this engine (a download lock of this process carries no engine token)."""
        return owner.in_this_process and (not owner.token or owner.token == self._token)

    def _other_owners(self: Engine, key_hash: str) -> list[LockOwner]:
        """Live processes (or other engines here) whose claim on this file's partial stands."""
        blockers = deletion_blockers(self.layout.lock_path(key_hash))
        return [owner for owner in blockers if not self._is_ours(owner)]

    def _view_only(self: Engine, job: Job) -> bool:
        """Another process's job that this engine only shows: no commands apply to it here."""
        return job.owner_lock is None and job.state == JobState.ELSEWHERE and not job.running_here

    def _refuse_if_elsewhere(self: Engine, job: Job, command: str) -> None:
        if self._view_only(job):
            raise OwnedElsewhere(job, command)

    def _claim(self: Engine, job: Job) -> bool:
        """Make this engine the job's owner; False (with `job.owner` set) while another has it."""
        if job.owner_lock is not None:
            return True
        for other in self._jobs.values():
            if other is not job and other.name == job.name and other.owner_lock is not None:
                if other.state.is_final:  # a finished run of the same model hands its claim on
                    job.owner_lock, other.owner_lock, job.owner = other.owner_lock, None, None
                    return True
        lock = DownloadLock(
            owner_lock_path(self.layout, job.name),
            what=job.name,
            keys=tuple(request.key_hash for request in job.spec.files),
            state=owner_word(job.state),
            token=self._token,
            live_pid_holds=True,
        )
        try:
            lock.acquire()
        except LockHeld as held:
            job.owner = held.owner
            return False
        job.owner_lock, job.owner = lock, None
        return True

    def _release(self: Engine, job: Job) -> None:
        if job.owner_lock is not None:
            job.owner_lock.release()
            job.owner_lock = None

    async def _wait_for_ownership(self: Engine, job: Job) -> None:
        """(runner) The job was asked for here but another process has it: show that process's
        progress until it lets go (finished, paused and quit, or died), then own it."""
        while not self._claim(job):
            self._follow_owner(job)
            await asyncio.sleep(OTHERS_POLL)
        job.speed, job.eta, job.seen_bytes_at, job.phase = 0.0, None, None, "downloading"
        self._save_job_record(job)

    def _follow_owner(self: Engine, job: Job) -> None:
        """Show another process's job as it is now: its owner's word, and its bytes and speed
        from the resume state that process keeps saving."""
        owner = job.owner or LockOwner(0, "?", time.time(), time.time())
        phase = elsewhere_phase(owner)
        # said again only when this part changes (not for each heartbeat's age)
        said = f"{owner_label(owner)} (pid {owner.pid} on {owner.host}, "
        done = self._bytes_on_disk(job)
        now = time.monotonic()
        if job.seen_bytes_at is not None and now > job.seen_bytes_at[1]:
            seen, at = job.seen_bytes_at
            instant = max(0.0, (done - seen) / (now - at))
            job.speed = instant if job.speed == 0 else 0.5 * job.speed + 0.5 * instant
        job.seen_bytes_at = (done, now)
        total = job.total or job.spec.total_size or self._saved_total(job)
        job.total = total
        job.eta = (total - done) / job.speed if total and job.speed > 0 else None
        job.bytes_done = done
        if job.state != JobState.ELSEWHERE or not job.message.startswith(said):
            job.phase = phase
            message = f"{owner_label(owner)} ({owner.describe()})"
            if job.running_here and owner.state in ("paused", "failed"):
                message += ": waiting here until it is resumed there or that process exits"
            self._set_state(job, JobState.ELSEWHERE, message)
        self._emit(Progress(job.id, job.name, done, total, job.speed, job.eta, phase))

    def _saved_total(self: Engine, job: Job) -> int | None:
        """The job's size from its files' resume state, when the spec did not know it."""
        states = self.resume_states(job)
        if len(states) != len(job.spec.files) or any(not s.total_size for s in states):
            return None
        return sum(state.total_size or 0 for state in states)

    def _adopt_or_settle(self: Engine, job: Job) -> None:
        """(watcher) Follow another process's job; once its owner is gone, adopt what it left
        (paused, from earlier) or show how it ended (completed there, or cancelled)."""
        left_by = owner_words(job.owner) if job.owner else "another process"
        if not self._claim(job):
            self._follow_owner(job)
            return
        job.speed, job.eta, job.seen_bytes_at, job.phase = 0.0, None, None, "downloading"
        if record_exists(self.layout, job.name):
            job.bytes_done = self._bytes_on_disk(job)
            self._emit(Progress(job.id, job.name, job.bytes_done, job.total, 0.0, None))
            self._set_state(job, JobState.PAUSED, f"from earlier: left by {left_by}; space resumes")
            return
        manifest = self._manifest(job)
        finished = all(already_placed(self.layout, r, manifest) for r in job.spec.files)
        self._release(job)
        if finished:
            job.bytes_done = job.total or job.bytes_done
            self._set_state(job, JobState.COMPLETED, f"completed by {left_by}")
        else:
            self._set_state(job, JobState.CANCELLED, f"cancelled or removed by {left_by}")

    async def _watch_ownership(self: Engine) -> None:
        """Keep this engine's claims fresh (heartbeats) and other processes' jobs current."""
        while True:
            await asyncio.sleep(OTHERS_POLL)
            for job in list(self._jobs.values()):
                try:
                    if job.owner_lock is not None:
                        job.owner_lock.heartbeat()
                    elif self._view_only(job):
                        self._adopt_or_settle(job)
                except OSError as exc:  # a store that went away must not stop the watcher
                    self._emit(Notice(job.id, job.name, os_message(exc)))


def owner_word(state: JobState) -> str:
    """What other processes show for a job this engine owns ('downloading' → 'downloading
    elsewhere' there)."""
    if state.is_active:
        return "downloading"
    if state == JobState.ELSEWHERE:
        return "waiting"
    return state.value
