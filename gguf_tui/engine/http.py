"""The engine's HTTP session and how it reads servers' answers."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from gguf_tui.config import Config
from gguf_tui.engine.errors import FatalDownloadError, NetworkError, RetryableError
from gguf_tui.httputil import UnusableURL, check_http_url, parse_retry_after, resolve_location
from gguf_tui.proxies import ProxyRoutes
from gguf_tui.proxy_middleware import ProxyError, proxy_middleware
from gguf_tui.textsafe import plain, redact_url, redact_urls_in

USER_AGENT = "gguf-tui/0.1"
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_FATAL_MESSAGES = {
    401: "authentication required (401)",
    403: "access denied (403)",
    404: "not found (404)",
    410: "gone (410)",
}


def make_session(config: Config, *, limit: int = 64) -> aiohttp.ClientSession:
    """One session for every download: no total timeout, connect and stall (read) timeouts.

    Each request is routed through the proxy that `network.proxy` or the environment names for
    its host (read now: a service keeps the proxy settings it started with)."""
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=config.downloads.connect_timeout,
        sock_read=config.downloads.stall_timeout,
    )
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        auto_decompress=False,
        read_bufsize=256 * 1024,  # measured: larger buffers raise peak RSS, not speed
        middlewares=(proxy_middleware(ProxyRoutes.from_config(config)),),
    )


def check_request_url(url: str) -> None:
    """A download's own URL must be usable before anything is asked of a server."""
    try:
        check_http_url(url)
    except UnusableURL as exc:
        raise FatalDownloadError(f"cannot download {redact_url(url)}: {exc}") from None


def redirect_target(request_url: str, url: str, location: str) -> str:
    """Where a redirect from `url` leads, checked before it is followed: another scheme (file:,
    ftp:, data:) fails the download at once; a malformed address fails this attempt."""
    try:
        return resolve_location(url, location)
    except UnusableURL as exc:
        if exc.final:
            raise FatalDownloadError(
                f"the server redirected {redact_url(request_url)} to an unsupported address: {exc}"
            ) from None
        raise RetryableError(f"the server redirected to an unusable address: {exc}") from None


def check_status(response: aiohttp.ClientResponse, url: str) -> None:
    """Raise for answers that are not file bytes: retry 408/429/5xx, fail 401/403/404 at once."""
    status = response.status
    if status in (200, 206, 416):
        return
    where = redact_url(url)
    if status in (408, 429) or status >= 500:
        raise RetryableError(
            f"server answered {status} {response.reason or ''}".strip(),
            parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in _FATAL_MESSAGES:
        raise FatalDownloadError(f"{_FATAL_MESSAGES[status]}: {where}")
    raise FatalDownloadError(f"server answered {status} for {where}")


def describe_error(exc: BaseException, stall_timeout: float | None = None) -> str:
    """One line about a network error, without credentials or URLs' query strings."""
    if isinstance(exc, ProxyError):
        return str(exc)  # already one line naming the proxy, credentials removed
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        if stall_timeout:
            return f"stalled: no data for {stall_timeout:g} s"
        return "timed out"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection dropped mid-transfer"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, aiohttp.ClientSSLError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    text = str(exc) or type(exc).__name__
    return plain(redact_urls_in(text))[:300]


def transfer_error(
    exc: BaseException, stall_timeout: float | None = None
) -> RetryableError | FatalDownloadError:
    """What a failed request or body read means: a network outage (refused, reset, no route,
    DNS, timeout: retried for `outage_timeout`), a proxy's refusal that asking again cannot
    mend (407, a denying rule: fatal), or another failure (retried `retries` times)."""
    reason = describe_error(exc, stall_timeout)
    if isinstance(exc, ProxyError) and exc.fatal:
        return FatalDownloadError(reason)
    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.InvalidURL, ValueError)):
        return RetryableError(reason)  # the same answer comes back however long one waits
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
        return NetworkError(reason)
    return RetryableError(reason)
