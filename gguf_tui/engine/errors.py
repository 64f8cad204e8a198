"""Why a download attempt stopped; the job runner decides what happens next."""

from __future__ import annotations


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


class RestartFromZero(DownloadError):
    """The partial cannot be continued (server ignored Range, file changed): start over."""


class ChecksumMismatch(DownloadError):
    """The finished file's SHA-256 or size is not what was published."""


class RetriesExhausted(FatalDownloadError):
    """Too many failed attempts in a row."""
