"""The dashboard's handlers of engine messages: attach, progress, state changes, job files.

A mixin of `GgufApp` (found by name: Textual collects `@on` only from message pumps); the
workers in `app.py` post these messages, the handlers here keep the queue and its views true.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from rich.text import Text

from gguf_tui.engine.api import (
    JobAdded,
    JobError,
    JobRemoved,
    JobState,
    Notice,
    OrderChanged,
    StateChanged,
    StateReason,
    apply_event,
)
from gguf_tui.tui import messages as msg
from gguf_tui.tui.lifecycle import while_running
from gguf_tui.tui.queue import QueueTable
from gguf_tui.tui.render import clean
from gguf_tui.tui.views import queue_counts

if TYPE_CHECKING:
    from gguf_tui.tui.app import GgufApp

DETAIL_REFRESH_EVERY = 1.0  # seconds between detail repaints of a downloading job


class EngineEventsMixin:
    """Engine messages of `GgufApp`."""

    @while_running
    def on_engine_ready(self: GgufApp, message: msg.EngineReady) -> None:
        self._engine_ready = True
        self.engine_state = "attached"
        self.jobs = {view.id: view for view in message.snapshot.jobs}
        self.job_order = [view.id for view in message.snapshot.jobs]
        self.sync_jobs()
        pending, self.pending_refs = self.pending_refs, []
        for ref in dict.fromkeys(pending):
            self.enqueue_ref(ref)
        if message.restored:
            count = message.restored
            self.notify(
                f"{count} unfinished download{'s' if count != 1 else ''} from earlier: paused, "
                f"space in the queue resumes",
                markup=False,
            )

    @while_running
    def on_engine_failed(self: GgufApp, message: msg.EngineFailed) -> None:
        self.engine_state = "gone"
        self.update_status()
        self.notify(message.error, severity="error", timeout=15, markup=False)
        self.show_detail(Text(message.error))

    @while_running
    def on_engine_gone(self: GgufApp, message: msg.EngineGone) -> None:
        self._engine_ready = False
        self.engine_state = "gone"
        self.update_status()
        key = self.key_shown("restart_engine")
        self.notify(
            f"{message.error}: {key} (or the palette's Restart the engine) starts it again; "
            f"its downloads resume",
            severity="error",
            timeout=30,
            markup=False,
        )

    def sync_jobs(self: GgufApp, cursor_job: int | None = None) -> None:
        """Show the queue as this app's copy of it has it (start, reorder)."""
        self.jobs = {job_id: self.jobs[job_id] for job_id in self.job_order if job_id in self.jobs}
        self.query_one(QueueTable).set_jobs([self.jobs[i] for i in self.job_order], cursor_job=cursor_job)
        self._queue_changed()

    @while_running
    def on_job_progress(self: GgufApp, message: msg.JobProgress) -> None:
        event = message.event
        if event.job_id not in self.jobs:
            return
        apply_event(self.jobs, self.job_order, event)
        view = self.jobs[event.job_id]
        self.query_one(QueueTable).update_job(view)
        self.update_status()
        if self.detail_source == "queue" and self.current_job_id() == event.job_id:
            now = time.monotonic()
            if now - self._detail_painted_at >= DETAIL_REFRESH_EVERY:
                self.show_job_detail()
                self.read_job_files(event.job_id)

    @while_running
    def on_job_files(self: GgufApp, message: msg.JobFiles) -> None:
        view = self.jobs.get(message.view.id)
        if view is None:
            return
        self.jobs[view.id] = dataclasses.replace(view, files=message.view.files)
        if self.detail_source == "queue" and self.current_job_id() == view.id:
            self.show_job_detail()

    @while_running
    def on_engine_event_posted(self: GgufApp, message: msg.EngineEventPosted) -> None:
        event = message.event
        if isinstance(event, JobError):
            self.notify(f"{clean(event.name, 80)}: {clean(event.message, 300)}", severity="error", timeout=10, markup=False)
            return
        if isinstance(event, Notice):
            self.notify(f"{clean(event.name, 80)}: {clean(event.message, 300)}", timeout=8, markup=False)
            return
        apply_event(self.jobs, self.job_order, event)
        if isinstance(event, (JobAdded, OrderChanged)):
            self.sync_jobs(cursor_job=event.job_id if isinstance(event, OrderChanged) else None)
            return
        if isinstance(event, JobRemoved):
            self.query_one(QueueTable).remove_job(event.job_id)
            self._queue_changed()
            return
        view = self.jobs.get(event.job_id)
        if view is None:
            return
        self.query_one(QueueTable).update_job(view)
        if isinstance(event, StateChanged):
            if event.state == JobState.COMPLETED:
                if event.reason == StateReason.ALREADY_IN_STORE:
                    note = "already in the store"
                elif event.message.startswith("SHA-256 recorded"):
                    note = "downloaded; SHA-256 recorded (no published hash to verify against)"
                else:
                    note = "downloaded and verified"
                self.notify(f"{clean(view.name, 80)}: {note}", markup=False)
                self.rescan()
            self._queue_changed()
        if self.detail_source == "queue" and self.current_job_id() == event.job_id:
            self.show_job_detail()
            if isinstance(event, StateChanged):
                self.read_job_files(event.job_id)

    @while_running
    def on_job_removed(self: GgufApp, message: msg.JobRemoved) -> None:
        if self.jobs.pop(message.job_id, None) is None:
            return
        self.job_order = [i for i in self.job_order if i != message.job_id]
        self.query_one(QueueTable).remove_job(message.job_id)
        self._queue_changed()

    def _queue_changed(self: GgufApp) -> None:
        self.update_status()
        self.refresh_catalog()
        queue = self.query_one(QueueTable)
        counts = queue_counts(list(self.jobs.values()))
        parts = [f"{number} {word}" for word, number in counts.items() if number]
        queue.border_subtitle = " · ".join(parts) if self.jobs else "empty: d on a quantisation downloads it"
        if self.detail_source == "queue":
            self.show_job_detail()
