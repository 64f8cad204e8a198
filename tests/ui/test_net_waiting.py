"""An outage in the dashboard: the queue says "waiting for network", not a retry count."""

from __future__ import annotations

from gguf_tui.engine.api import JobState, Retrying
from gguf_tui.tui.render import state_word
from gguf_tui.tui.views import JobView, applied


def test_waiting_for_network_shows_in_the_queue_state_word():
    job = JobView(1, "m", JobState.DOWNLOADING)
    waiting = applied(job, Retrying(1, "m", 7, 0, "waiting for network (next try in 60 s): timed out", 60.0))
    assert state_word(waiting) == "waiting for network"
    counted = applied(job, Retrying(1, "m", 2, 5, "server answered 503", 1.0))
    assert state_word(counted) == "retrying 2/5"
