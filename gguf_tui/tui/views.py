"""Plain view models the panes render: no widgets here, so they are cheap to test.

A download is the engine's own frozen `JobView` (engine/api.py), taken from the subscription's
snapshot and then kept current by folding in engine events (`apply_event`), so the dashboard
sees the same thing whether the engine runs in this process or in the service. Local models are
the store package's own `StoreModel`s (`gguf_tui.store.scan`).
"""

from __future__ import annotations

from gguf_tui.engine.api import EngineEvent, JobState, JobView, apply_event

__all__ = ["COUNT_WORDS", "JobView", "applied", "queue_counts"]


def applied(view: JobView, event: EngineEvent) -> JobView:
    """One view after one event, folded the way the whole queue is (`apply_event`)."""
    jobs = {view.id: view}
    apply_event(jobs, [view.id], event)
    return jobs.get(view.id, view)


# The order the queue's counts are told in, on the status bar and under the queue alike.
COUNT_WORDS = ("active", "elsewhere", "queued", "paused", "failed")


def queue_counts(views: list[JobView] | tuple[JobView, ...]) -> dict[str, int]:
    """How many downloads are in each state word: the one count both status lines show.

    'active' is this process's running work (downloading, retrying, verifying); another
    process's download counts as 'elsewhere', never as active here.
    """
    counts = dict.fromkeys(COUNT_WORDS, 0)
    for view in views:
        if view.state.is_active:
            counts["active"] += 1
        elif view.state == JobState.ELSEWHERE:
            counts["elsewhere"] += 1
        elif view.state.value in counts:
            counts[view.state.value] += 1
    return counts
