"""Keep the garbage collector's full passes off the busy moments of the dashboard.

A full (generation 2) collection walks every object the collector tracks and holds the event
loop meanwhile: Textual's widgets and styles, the modules, and on a box with thousands of other
tools' models their scan and catalog rows. Measured on a 2,000-file box
(bench/bench_other_stores.py, 2 shared cores): full passes of 100-500 ms every second or two
while downloads sent progress, each one a stall of the dashboard.

So when a scan of the other stores has been shown, the young generations are collected and
what is left is frozen (`gc.freeze`): those objects live until the next scan (and are freed by
reference counting then: a scan holds no cycles), and the passes in between only walk what is
newer, which stays small. A frozen garbage cycle (a screen closed before a freeze, say) would
never be freed, so every FULL_PASS_EVERY seconds the freeze is preceded by one full pass with
every frozen object back in view.
"""

from __future__ import annotations

import gc
import time

FULL_PASS_EVERY = 600.0  # seconds between the full passes that free frozen garbage cycles

_last_full_pass: float | None = None


def settle_collector(now: float | None = None) -> bool:
    """Collect the young generations and freeze the survivors; True when a full pass ran."""
    global _last_full_pass
    now = time.monotonic() if now is None else now
    full = _last_full_pass is None or now - _last_full_pass >= FULL_PASS_EVERY
    if full:
        gc.unfreeze()
        gc.collect()
        _last_full_pass = now
    else:
        gc.collect(1)
    gc.freeze()
    return full
