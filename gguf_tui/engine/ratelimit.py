"""A token bucket shared by every connection of every download (downloads.max_rate)."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Grants bytes at `rate` per second; callers queue in FIFO order, so sharing is fair."""

    def __init__(self, rate: int | None, burst_seconds: float = 0.25) -> None:
        self.rate = rate
        self._burst = (rate or 0) * burst_seconds
        self._tokens = self._burst
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.rate)

    def set_rate(self, rate: int | None) -> None:
        self.rate = rate
        self._burst = (rate or 0) * 0.25
        self._tokens = min(self._tokens, self._burst)

    async def acquire(self, amount: int) -> None:
        if not self.rate:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= amount or self._tokens >= self._burst:
                    self._tokens -= amount  # may go negative: large chunks are paid back later
                    return
                await asyncio.sleep((min(amount, self._burst) - self._tokens) / self.rate)


class JobRateLimiter:
    """A job's own rate limit (`pull --max-rate`) on top of the shared one, so one client's
    limit slows only its own downloads and never lifts `downloads.max_rate`."""

    def __init__(self, own: RateLimiter, shared: RateLimiter) -> None:
        self.own = own
        self.shared = shared

    @property
    def rate(self) -> int | None:
        return self.own.rate or self.shared.rate

    async def acquire(self, amount: int) -> None:
        await self.own.acquire(amount)
        await self.shared.acquire(amount)
