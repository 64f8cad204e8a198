"""When one connection of a download tries again after a failed attempt, and when it gives up.

Two kinds of failure are bounded differently. A server's answer that is no use (408/429/5xx, a
body cut short, no bytes) is retried `downloads.retries` times. A network failure (refused,
reset, no route, DNS, timeout) is retried like that at first; after those tries the network is
taken to be down and the download waits for it, trying at most a minute apart, until
`downloads.outage_timeout` has passed since the first failure (0: never gives up).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from gguf_tui.config import DownloadsConfig
from gguf_tui.engine.errors import NetworkError, RetriesExhausted, RetryableError
from gguf_tui.httputil import backoff_delay

OUTAGE_RETRY_CAP = 60.0  # seconds: while the network is down, try at least once a minute


@dataclass(frozen=True)
class NextTry:
    """What the Retrying event says: `most` is 0 while waiting for the network (no count)."""

    delay: float
    attempt: int
    most: int
    reason: str


class RetryPolicy:
    """The failures in a row of one connection; `progressed()` starts a new run."""

    def __init__(
        self, settings: DownloadsConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.failures = 0  # of any kind: they set the backoff
        self.server_failures = 0  # ... those that were not the network's: `retries` bounds them
        self.outage_since: float | None = None  # first network failure of this run

    def progressed(self) -> None:
        self.failures, self.server_failures, self.outage_since = 0, 0, None

    def next_try(self, exc: RetryableError) -> NextTry:
        """The wait before the next attempt; raises RetriesExhausted when it is time to stop."""
        self.failures += 1
        retries = self.settings.retries
        if not isinstance(exc, NetworkError):
            self.server_failures += 1
            if self.server_failures > retries:
                raise RetriesExhausted(
                    f"gave up after {self.server_failures} failed attempts: {exc.reason}"
                )
            delay = exc.retry_after
            if delay is None:
                delay = backoff_delay(self.failures, self.settings.retry_backoff)
            return NextTry(delay, self.server_failures, retries, exc.reason)
        now = self.clock()
        if self.outage_since is None:
            self.outage_since = now
        if self.failures <= retries:
            delay = backoff_delay(self.failures, self.settings.retry_backoff)
            return NextTry(delay, self.failures, retries, exc.reason)
        outage = now - self.outage_since
        limit = self.settings.outage_timeout
        if limit and outage >= limit:
            raise RetriesExhausted(
                f"gave up after {format_outage(outage)} without a working connection: "
                f"{exc.reason}"
            )
        delay = backoff_delay(self.failures, self.settings.retry_backoff, cap=OUTAGE_RETRY_CAP)
        if limit:
            delay = min(delay, max(0.05, limit - outage))  # one last try at the deadline
        reason = f"waiting for network (next try in {math.ceil(delay)} s): {exc.reason}"
        return NextTry(delay, self.failures, 0, reason)


def format_outage(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
