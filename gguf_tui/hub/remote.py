"""GGUF header facts of a remote file, read with HTTP Range requests instead of a download."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gguf_tui import __version__
from gguf_tui.hub.auth import origin_of
from gguf_tui.httputil import UnusableURL, parse_retry_after, resolve_location
from gguf_tui.hub.errors import HubError, http_error
from gguf_tui.proxy_middleware import ProxyError
from gguf_tui.textsafe import redact_url

INITIAL_BYTES = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024 * 1024  # the GGUF reader's own header budget (gguf/reader.py)
MAX_RETRY_AFTER = 60.0
_REDIRECTS = (301, 302, 303, 307, 308)
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)|bytes\s+\*/(\d+)", re.IGNORECASE)
_RESOLVE_RE = re.compile(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class _Fetcher:
    """Fetches byte ranges of one file, remembering where the resolve URL redirected."""

    def __init__(self, url: str, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        self.url = url
        self.origin = origin_of(url)
        self.session = session
        self.auth = dict(headers)
        self.target: str | None = None  # signed CDN URL, in memory only
        self.total_size: int | None = None
        self.bytes_fetched = 0

    def _headers_for(self, url: str, start: int, end: int) -> dict[str, str]:
        headers = {
            "Range": f"bytes={start}-{end}",
            "Accept-Encoding": "identity",
            "User-Agent": f"gguf-tui/{__version__}",
        }
        if origin_of(url) == self.origin:  # the token never goes to a CDN
            headers.update(self.auth)
        return headers

    async def fetch(self, start: int, end: int) -> bytes:
        """Bytes [start, end] (fewer at the end of the file), with bounded retries."""
        for attempt in range(4):
            try:
                return await self._fetch_once(start, end)
            except _Retry as retry:
                if attempt == 3:
                    raise HubError(
                        f"giving up reading {redact_url(self.url)}: {retry.reason}", kind="http"
                    ) from None
                await asyncio.sleep(retry.wait)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if isinstance(exc, ProxyError) and (exc.fatal or attempt == 3):
                    raise HubError(f"cannot read {redact_url(self.url)}: {exc}", kind="proxy") from None
                if attempt == 3:
                    raise HubError(
                        f"cannot read {redact_url(self.url)}: {type(exc).__name__}", kind="network"
                    ) from None
                self.target = None
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    async def _fetch_once(self, start: int, end: int) -> bytes:
        url = self.target or self.url
        for _ in range(10):
            async with self.session.get(
                url, headers=self._headers_for(url, start, end), allow_redirects=False
            ) as response:
                if response.status in _REDIRECTS and response.headers.get("Location"):
                    url = _follow(str(response.url), response.headers["Location"])
                    continue
                if response.status in (403, 410) and self.target is not None:
                    self.target = None  # the signed URL expired: resolve again
                    raise _Retry("signed URL expired", 0)
                if response.status == 429:
                    wait = parse_retry_after(response.headers.get("Retry-After"))
                    wait = 1.0 if wait is None else wait
                    if wait > MAX_RETRY_AFTER:
                        raise HubError(
                            f"the Hub is rate limiting requests; try again in {round(wait)} s",
                            kind="rate_limited",
                            status=429,
                        )
                    raise _Retry("rate limited", wait)
                if response.status >= 500:
                    raise _Retry(f"HTTP {response.status}", 1.0)
                if response.status == 416:
                    self._note_total(response.headers.get("Content-Range"))
                    return b""
                if response.status >= 400:
                    raise self._error(response.status, response.headers, await response.read())
                if url != self.url:
                    self.target = url
                return await self._body(response, start, end)
        raise HubError(f"too many redirects reading {redact_url(self.url)}", kind="http")

    def _note_total(self, content_range: str | None) -> tuple[int, int] | None:
        match = _CONTENT_RANGE_RE.search(content_range or "")
        if not match:
            return None
        if match.group(4):
            self.total_size = int(match.group(4))
            return None
        if match.group(3) != "*":
            self.total_size = int(match.group(3))
        return int(match.group(1)), int(match.group(2))

    async def _body(self, response: aiohttp.ClientResponse, start: int, end: int) -> bytes:
        wanted = end - start + 1
        if response.status == 206:
            span = self._note_total(response.headers.get("Content-Range"))
            if span is None or span[0] != start:
                raise HubError(
                    f"server sent the wrong byte range for {redact_url(self.url)}", kind="bad_response"
                )
            data = await response.content.readexactly(min(wanted, span[1] - span[0] + 1))
            self.bytes_fetched += len(data)
            return data
        # 200: the server ignored Range. Read only as far as needed, then drop the connection.
        if response.content_length is not None:
            self.total_size = response.content_length
        received = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            received += chunk
            self.bytes_fetched += len(chunk)
            if len(received) > end:
                break
        if response.content_length is None and len(received) <= end:
            self.total_size = len(received)
        return bytes(received[start : end + 1])

    def _error(self, status: int, headers: Any, body: bytes) -> HubError:
        match = _RESOLVE_RE.search(urlsplit(self.url).path)
        repo, revision, path = (match.group(1), match.group(2), match.group(3)) if match else (None,) * 3
        base = self.url[: self.url.index(f"/{repo}/resolve/")] if match else self.url
        return http_error(
            status,
            headers,
            body,
            what=f"reading {redact_url(self.url)}",
            repo=repo,
            revision=revision,
            path=path,
            repo_page=redact_url(f"{base}/{repo}") if repo else redact_url(self.url),
            had_token=bool(self.auth),
            secret=_bearer(self.auth),
        )


class _Retry(Exception):
    def __init__(self, reason: str, wait: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    return value.split(" ", 1)[1] if " " in value else None


async def read_remote_gguf(
    url: str,
    session: aiohttp.ClientSession,
    *,
    headers: dict[str, str] | None = None,
    initial_bytes: int = INITIAL_BYTES,
    max_bytes: int = MAX_HEADER_BYTES,
):
    """Parse the GGUF header of a remote file: returns (GGUFInfo, bytes_fetched).

    Starts with `initial_bytes` and asks for more (the parser's `needed` hint, at least double)
    until the header parses. Redirects are followed; `headers` (auth) go only to the origin of
    `url`. Raises HubError for HTTP failures and gguf_tui.gguf.GGUFError for a bad header.
    """
    from gguf_tui.gguf import GGUFError, GGUFTruncated, parse_gguf_bytes

    fetcher = _Fetcher(url, session, headers or {})
    data = bytearray()
    want = max(1024, initial_bytes)
    while True:
        if fetcher.total_size is not None:
            want = min(want, fetcher.total_size)
        if want > len(data):
            data += await fetcher.fetch(len(data), want - 1)
        try:
            info = parse_gguf_bytes(bytes(data), total_size=fetcher.total_size)
            return info, fetcher.bytes_fetched
        except GGUFTruncated as exc:
            at_end = fetcher.total_size is not None and len(data) >= fetcher.total_size
            if at_end or len(data) < want:
                raise GGUFError(
                    f"{redact_url(url)}: the file ends inside its GGUF header"
                ) from None
            if len(data) >= max_bytes:
                raise GGUFError(
                    f"{redact_url(url)}: GGUF header larger than {max_bytes} bytes"
                ) from None
            want = min(max(exc.needed, want * 2), max_bytes)


def _follow(url: str, location: str) -> str:
    """The checked target of a redirect while reading a remote header (a HubError if unusable)."""
    try:
        return resolve_location(url, location)
    except UnusableURL as exc:
        raise HubError(
            f"{redact_url(url)} redirected to an unusable address: {exc}", kind="bad_response"
        ) from None

