"""HTTP to the Hub's API: redirects by hand, the token only to its origin, retries, deadlines.

The seam under `HubClient`: this part knows requests and replies, the client knows what the
endpoints mean. 429 waits for `Retry-After`; 5xx and network errors retry a couple of times with
backoff; everything else becomes a one-line HubError. Every API call (retries, redirects and
pages included) runs under one overall deadline, `hub.api_timeout`: the socket read timeout
alone never fires for a server that trickles a byte every few seconds. Lists are parsed item by
item and capped, so a huge listing costs bounded time and memory.

`hub.fallback_endpoints` are tried in order when the current endpoint answers 5xx or cannot be
reached (no retries on it while another is left); the one that answered stays in use for
`FALLBACK_STICKY` seconds, so a dead mirror does not cost every call a failed try. The token
goes to every configured endpoint (the user chose each as a Hub), never elsewhere. Requests are
routed through the proxy of `network.proxy` / the environment (gguf_tui.proxies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urljoin

import aiohttp
from multidict import CIMultiDictProxy

from gguf_tui import __version__
from gguf_tui.httputil import UnusableURL, parse_retry_after, resolve_location
from gguf_tui.hub.auth import auth_headers, get_token, origin_of
from gguf_tui.hub.errors import HubError, http_error
from gguf_tui.proxies import ProxyRoutes
from gguf_tui.proxy_middleware import ProxyError, proxy_middleware
from gguf_tui.hub.wire import (
    MAX_ERROR_BYTES,
    MAX_JSON_BYTES,
    endpoint_of,
    json_array_items,
    parse_json,
    read_body,
)
from gguf_tui.textsafe import plain, redact_url

USER_AGENT = f"gguf-tui/{__version__}"
API_TIMEOUT = 60.0  # seconds for one API call, all its retries and pages included
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_STATUSES = (500, 502, 503, 504)
_MAX_PAGES = 1000
FALLBACK_STICKY = 300.0  # seconds a fallback endpoint stays in use before the first is tried again
_T = TypeVar("_T")


class _Unset:
    pass


_UNSET: Any = _Unset()


@dataclass
class _Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str
    consumed: Any = None  # what `consume` made of a 2xx body (then `body` is empty)

    def json(self) -> Any:
        return parse_json(self.body, self.url)


@dataclass
class CallContext:
    """What a request is about, for error messages; `url` is the one being fetched right now."""

    what: str
    repo: str | None = None
    revision: str | None = None
    path: str | None = None
    url: str = ""
    deadline_at: float | None = None  # loop time when the call's deadline runs out


@dataclass
class _Page(Generic[_T]):
    """The usable items of one list page, and how many raw entries it held."""

    items: list[_T] = field(default_factory=list)
    entries: int = 0
    stopped_early: bool = False  # the cap or the wanted count was reached inside this page


@dataclass
class _Listing(Generic[_T]):
    items: list[_T]
    truncated: bool  # the Hub had more entries than the cap allowed


_Consume = Callable[[aiohttp.ClientResponse], Awaitable[Any]]


def next_link(link_header: str | None, base_url: str) -> str | None:
    """The `rel="next"` URL of a `Link` header, made absolute."""
    if not link_header:
        return None
    match = _LINK_NEXT_RE.search(link_header)
    return urljoin(base_url, match.group(1)) if match else None


class HubTransport:
    """Requests to one Hub endpoint with (optionally) one token, which is kept private.

    The token is not in `repr()`, and it is only put into requests whose origin is one of the
    configured endpoints' origins (the endpoint and its fallbacks).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token: str | None = _UNSET,
        connect_timeout: float = 30.0,
        read_timeout: float = 60.0,
        max_rate_limit_retries: int = 3,
        max_retry_after: float = 60.0,
        api_timeout: float = API_TIMEOUT,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        fallback_endpoints: Sequence[str] = (),
        proxy_routes: ProxyRoutes | None = None,
    ) -> None:
        first = endpoint.rstrip("/")
        self.endpoints = [first] + [
            url.rstrip("/") for url in fallback_endpoints if url.rstrip("/") != first
        ]
        self._active = 0  # index of the endpoint in use
        self._switched_at = 0.0
        self._origins = {origin_of(url) for url in self.endpoints}
        self.proxy_routes = proxy_routes
        self._token = get_token() if token is _UNSET else (token or None)
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_retry_after = max_retry_after
        self.api_timeout = api_timeout
        self._sleep = sleep
        self._clock = clock

    @property
    def endpoint(self) -> str:
        """The endpoint in use: the first, or a fallback after the first failed."""
        return self.endpoints[self._active]

    @property
    def origin(self) -> str:
        return origin_of(self.endpoint)

    @property
    def fallback_urls(self) -> list[str]:
        """The endpoints after the one in use, in order (where a download may fall over to)."""
        return self.endpoints[self._active + 1 :]

    def __repr__(self) -> str:
        token = "set" if self._token else "none"
        return f"{type(self).__name__}({redact_url(self.endpoint)!r}, token={token})"

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def redacted_endpoint(self) -> str:
        return redact_url(self.endpoint)

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for the Hub's origin (empty without a token)."""
        return auth_headers(self._token)

    def auth_headers_for(self, url: str) -> dict[str, str]:
        """Auth headers if `url` is on a configured endpoint's origin, else nothing."""
        return self.auth_headers() if origin_of(url) in self._origins else {}

    def scrub(self, text: str) -> str:
        """`text` with the token (if it somehow got there) replaced."""
        return text.replace(self._token, "<token>") if self._token else text

    def repo_page(self, repo: str) -> str:
        return f"{self.redacted_endpoint}/{repo}"

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            routes = self.proxy_routes or ProxyRoutes.from_settings()
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, middlewares=(proxy_middleware(routes),)
            )
        return self._session

    def _endpoint_index(self, url: str) -> int | None:
        for index, base in enumerate(self.endpoints):
            if url == base or url.startswith(base + "/"):
                return index
        return None

    def _on_active(self, url: str) -> str:
        """`url` moved onto the endpoint in use (a URL built before a switch, or before the
        first endpoint got its chance again)."""
        on = self._endpoint_index(url)
        if on is None or on == self._active:
            return url
        return self.endpoint + url[len(self.endpoints[on]) :]

    def _fall_over(self, url: str, why: str) -> str | None:
        """`url` moved onto the next endpoint after its own failed (or onto the one in use, when
        a concurrent call already moved on); None when no endpoint is left to try."""
        on = self._endpoint_index(url)
        if on is None:
            return None
        if on >= self._active:
            if on + 1 >= len(self.endpoints):
                return None
            self._active = on + 1
            self._switched_at = self._clock()
            self.on_fall_over(redact_url(self.endpoints[on]), self.redacted_endpoint, why)
        return self._on_active(url)

    def on_fall_over(self, failed: str, now: str, why: str) -> None:
        """A fallback endpoint took over: said in the engine service's log (a child of its
        logger; at INFO, so a command line stays quiet)."""
        logging.getLogger("gguf_tui.service.hub").info(
            "Hub endpoint %s failed (%s); using %s", failed, plain(why)[:200], now
        )

    def _back_to_first(self) -> None:
        if self._active and self._clock() - self._switched_at > FALLBACK_STICKY:
            self._active = 0

    # ---- requests ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _deadline(self, ctx: CallContext) -> AsyncIterator[None]:
        """One overall deadline for an API call; running out is a HubError naming the endpoint."""
        loop = asyncio.get_running_loop()
        self._back_to_first()
        ctx.deadline_at = loop.time() + self.api_timeout
        try:
            async with asyncio.timeout(self.api_timeout):
                yield
        except TimeoutError:
            where = endpoint_of(ctx.url) if ctx.url else self.redacted_endpoint
            raise HubError(
                f"the Hub did not answer within {self.api_timeout:g} s ({ctx.what}, {where}): "
                "try again later, or raise hub.api_timeout for a slow link",
                kind="timeout",
            ) from None

    async def _request(
        self,
        method: str,
        url: str,
        ctx: CallContext,
        *,
        params: dict[str, Any] | list[tuple[str, str]] | None = None,
        follow_redirects: bool = True,
        consume: _Consume | None = None,
    ) -> _Reply:
        """One request with manual redirects, bounded retries and mapped errors (2xx/3xx back).

        `consume` reads a 2xx body itself (a streamed list); a retry calls it again from the
        start, so it must build its result afresh each time.
        """
        rate_limited = 0
        failures = 0
        url = self._on_active(url)
        while True:
            try:
                reply = await self._send(method, url, params, follow_redirects, ctx, consume)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if isinstance(exc, ProxyError) and exc.fatal:
                    raise HubError(f"{exc} ({ctx.what})", kind="proxy") from None
                detail = plain(self.scrub(str(exc) or type(exc).__name__))[:200]
                moved = self._fall_over(url, detail)
                if moved is not None:
                    url, failures = moved, 0
                    continue
                failures += 1
                if failures >= 3:
                    raise HubError(
                        f"cannot reach the Hub at {self.redacted_endpoint} ({ctx.what}): {detail}",
                        kind="network",
                    ) from None
                await self._sleep(0.5 * 2 ** (failures - 1))
                continue
            if reply.status == 429:
                wait = parse_retry_after(reply.headers.get("Retry-After"))
                wait = 1.0 if wait is None else wait
                rate_limited += 1
                past_deadline = (
                    ctx.deadline_at is not None
                    and asyncio.get_running_loop().time() + wait > ctx.deadline_at
                )
                if (
                    rate_limited > self.max_rate_limit_retries
                    or wait > self.max_retry_after
                    or past_deadline
                ):
                    raise HubError(
                        f"the Hub is rate limiting requests ({ctx.what}); try again in "
                        f"{max(1, round(wait))} s",
                        kind="rate_limited",
                        status=429,
                    )
                await self._sleep(wait)
                continue
            if reply.status >= 500:
                moved = self._fall_over(url, f"HTTP {reply.status}")
                if moved is not None:
                    url, failures = moved, 0
                    continue
            if reply.status in _RETRY_STATUSES:
                failures += 1
                if failures < 3:
                    await self._sleep(0.5 * 2 ** (failures - 1))
                    continue
            if reply.status >= 400:
                raise self._error_for(reply, ctx)
            return reply

    async def _send(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | list[tuple[str, str]] | None,
        follow_redirects: bool,
        ctx: CallContext,
        consume: _Consume | None,
    ) -> _Reply:
        session = self._get_session()
        for _ in range(10):
            ctx.url = url
            headers = {"User-Agent": USER_AGENT}
            headers.update(self.auth_headers_for(url))
            async with session.request(
                method,
                url,
                params=params,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                location = response.headers.get("Location")
                if follow_redirects and response.status in _REDIRECTS and location:
                    try:
                        url = resolve_location(str(response.url), location)
                    except UnusableURL as exc:
                        raise HubError(
                            f"the Hub redirected {redact_url(str(response.url))} to an unusable "
                            f"address: {exc}",
                            kind="bad_response",
                        ) from None
                    params = None  # the Location carries its own query
                    if response.status == 303:
                        method = "GET"
                    continue
                reply = _Reply(response.status, response.headers, b"", str(response.url))
                if method == "HEAD":
                    return reply
                if consume is not None and 200 <= response.status < 300:
                    reply.consumed = await consume(response)
                    return reply
                limit = MAX_JSON_BYTES if response.status < 400 else MAX_ERROR_BYTES
                try:
                    reply.body = await read_body(response, limit)
                except HubError:
                    if response.status < 400:
                        raise
                    # An oversized error reply: its status says enough.
                return reply
        raise HubError(f"too many redirects from the Hub for {redact_url(url)}", kind="http")

    def _error_for(self, reply: _Reply, ctx: CallContext) -> HubError:
        return http_error(
            reply.status,
            reply.headers,
            reply.body,
            what=ctx.what,
            repo=ctx.repo,
            revision=ctx.revision,
            path=ctx.path,
            repo_page=self.repo_page(ctx.repo) if ctx.repo else self.redacted_endpoint,
            had_token=self.has_token,
            secret=self._token,
        )

    async def _paged(
        self,
        url: str,
        ctx: CallContext,
        params: list[tuple[str, str]] | None,
        convert: Callable[[Any], _T | None],
        *,
        max_entries: int,
        want: int | None = None,
    ) -> _Listing[_T]:
        """A JSON list endpoint read page by page (`Link: <...>; rel="next"`), item by item.

        `convert` turns a raw entry into what the caller keeps (None: drop it), so no page is
        held as raw JSON. Reading stops after `max_entries` raw entries (then `truncated` says
        whether the Hub had more) or once `want` items were kept.
        """
        items: list[_T] = []
        entries = 0
        seen: set[str] = set()
        next_url: str | None = url
        first = True
        for _ in range(_MAX_PAGES):
            if next_url is None:
                break
            budget = max_entries - entries
            wanted = None if want is None else want - len(items)

            async def read_page(response: aiohttp.ClientResponse) -> _Page[_T]:
                page: _Page[_T] = _Page()
                async for raw in json_array_items(response):
                    if page.entries >= budget or (wanted is not None and len(page.items) >= wanted):
                        page.stopped_early = True
                        break
                    page.entries += 1
                    converted = convert(raw)
                    if converted is not None:
                        page.items.append(converted)
                return page

            reply = await self._request(
                "GET", next_url, ctx, params=params if first else None, consume=read_page
            )
            first = False
            page: _Page[_T] = reply.consumed
            items.extend(page.items)
            entries += page.entries
            seen.add(reply.url)
            next_url = next_link(reply.headers.get("Link"), reply.url)
            if next_url in seen:
                next_url = None
            if want is not None and len(items) >= want:
                return _Listing(items, truncated=False)
            if page.stopped_early or (entries >= max_entries and next_url is not None):
                return _Listing(items, truncated=True)
        return _Listing(items, truncated=next_url is not None)
