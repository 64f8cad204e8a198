"""Why a download attempt stopped; the job runner decides what happens next."""

from __future__ import annotations

import asyncio


class DownloadError(Exception):
    """Base class; `str()` is a one-line message safe to show (no secrets)."""


class FatalDownloadError(DownloadError):
    """Retrying will not help (401/403/404, bad path, unsupported answer): fail the job now."""


class RetryableError(DownloadError):
    """A network error or a 408/429/5xx: retry after a backoff (or the server's Retry-After)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class NetworkError(RetryableError):
    """The network failed (refused, reset, no route, DNS, timeout), not the server's answer:
    retried for as long as `downloads.outage_timeout` allows, so a download survives outages."""


class RestartFromZero(DownloadError):
    """The partial cannot be continued (server ignored Range, file changed): start over."""


class ChecksumMismatch(DownloadError):
    """The finished file's SHA-256 or size is not what was published."""


class DiskFullError(Exception):
    """Not enough space; the partial (if any) is intact and resumable."""


class RetriesExhausted(FatalDownloadError):
    """Too many failed attempts in a row."""


_SEVERITY = (DiskFullError, FatalDownloadError, ChecksumMismatch, RestartFromZero, RetryableError)


def most_telling(group: BaseExceptionGroup) -> BaseException:
    """The exception that decides what happens next when several connections failed at once."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        elif not isinstance(exc, asyncio.CancelledError):
            leaves.append(exc)

    collect(group)
    for kind in _SEVERITY:
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0] if leaves else asyncio.CancelledError()
