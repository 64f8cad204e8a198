"""Async client for the Hugging Face Hub HTTP API: search, repo info, tree listing, access checks.

One aiohttp session (the caller's, or our own with big-file timeouts). Redirects are followed
by hand so the token is only ever sent to the Hub's own origin. 429 waits for `Retry-After`;
5xx and network errors retry a couple of times with backoff; everything else becomes a
one-line HubError. Every API call (retries, redirects and pages included) has one overall
deadline, `hub.api_timeout`: the socket read timeout alone never fires for a server that
trickles a byte every few seconds. Lists are parsed item by item and capped, so a huge tree
costs bounded time and memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urljoin

import aiohttp
from multidict import CIMultiDictProxy

from gguf_tui import __version__
from gguf_tui.httputil import parse_retry_after
from gguf_tui.hub.auth import auth_headers, get_token, origin_of
from gguf_tui.hub.errors import HubError, http_error
from gguf_tui.hub.models import (
    HubFile,
    RepoFiles,
    RepoInfo,
    SearchResult,
    SkippedPath,
    TreeListing,
)
from gguf_tui.hub.paths import check_repo_id, check_repo_path, is_valid_repo_id
from gguf_tui.hub.quants import annotate, assign_local_names, group_files, is_gguf
from gguf_tui.hub.wire import (
    MAX_ERROR_BYTES,
    MAX_JSON_BYTES,
    endpoint_of,
    json_array_items,
    parse_json,
    read_body,
)
from gguf_tui.textsafe import plain, redact_url

SEARCH_CACHE_SECONDS = 60.0
USER_AGENT = f"gguf-tui/{__version__}"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_STATUSES = (500, 502, 503, 504)
_MAX_PAGES = 1000
API_TIMEOUT = 60.0  # seconds for one API call, all its retries and pages included
# A repo tree is read up to this many entries: a listing of 100k entries took 19 s and 250 MB,
# and no GGUF repo comes near it (the biggest list a few hundred files).
MAX_TREE_ENTRIES = 20_000
MAX_SEARCH_ENTRIES = 5_000
# repo_info asks only for the fields it reads: without `expand` the Hub also sends `siblings`,
# one entry per file, which for a huge repo is megabytes of JSON nobody looks at.
_INFO_FIELDS = ("sha", "gated", "private", "cardData", "downloads", "likes", "lastModified", "tags")
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
class _Context:
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


def valid_sha256(value: object) -> str | None:
    """`value` lower-cased if it is a 64-hex SHA-256 (as in `lfs.oid`), else None."""
    if not isinstance(value, str):
        return None
    value = value.strip().strip('"').lower()
    return value if _SHA256_RE.match(value) else None


def next_link(link_header: str | None, base_url: str) -> str | None:
    """The `rel="next"` URL of a `Link` header, made absolute."""
    if not link_header:
        return None
    match = _LINK_NEXT_RE.search(link_header)
    return urljoin(base_url, match.group(1)) if match else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _license_of(data: dict[str, Any]) -> str | None:
    card = data.get("cardData")
    if isinstance(card, dict):
        lic = card.get("license")
        if isinstance(lic, str) and lic:
            return plain(lic)[:100]
        if isinstance(lic, list) and lic and isinstance(lic[0], str):
            return plain(lic[0])[:100]
    for tag in data.get("tags") or []:
        if isinstance(tag, str) and tag.startswith("license:"):
            return plain(tag.removeprefix("license:"))[:100]
    return None


def _tags(data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(plain(t)[:100] for t in data.get("tags") or [] if isinstance(t, str))


class HubClient:
    """A Hub API client bound to one endpoint and (optionally) one token.

    The token is kept private: it is not in `repr()`, and it is only put into requests whose
    origin is the endpoint's origin.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token: str | None = _UNSET,
        connect_timeout: float = 30.0,
        read_timeout: float = 60.0,
        search_cache_seconds: float = SEARCH_CACHE_SECONDS,
        search_limit: int = 50,
        max_rate_limit_retries: int = 3,
        max_retry_after: float = 60.0,
        api_timeout: float = API_TIMEOUT,
        max_tree_entries: int = MAX_TREE_ENTRIES,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.origin = origin_of(self.endpoint)
        self._token = get_token() if token is _UNSET else (token or None)
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._search_cache: dict[tuple[str, int], tuple[float, list[SearchResult]]] = {}
        self.search_cache_seconds = search_cache_seconds
        self.search_limit = search_limit
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_retry_after = max_retry_after
        self.api_timeout = api_timeout
        self.max_tree_entries = max_tree_entries
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_config(
        cls, config: Any, session: aiohttp.ClientSession | None = None, *, token: str | None = _UNSET
    ) -> HubClient:
        return cls(
            config.hub.endpoint,
            session=session,
            token=token,
            connect_timeout=config.downloads.connect_timeout,
            read_timeout=max(config.downloads.stall_timeout, 30.0),
            search_limit=config.hub.search_limit,
            api_timeout=config.hub.api_timeout,
        )

    def __repr__(self) -> str:
        return f"HubClient({redact_url(self.endpoint)!r}, token={'set' if self._token else 'none'})"

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
        """Auth headers if `url` is on the Hub's own origin, else nothing."""
        return self.auth_headers() if origin_of(url) == self.origin else {}

    def scrub(self, text: str) -> str:
        """`text` with the token (if it somehow got there) replaced."""
        return text.replace(self._token, "<token>") if self._token else text

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # ---- URLs -------------------------------------------------------------------------------

    def repo_page(self, repo: str) -> str:
        return f"{self.redacted_endpoint}/{repo}"

    def resolve_url(self, repo: str, path: str, revision: str = "main") -> str:
        """`{endpoint}/{repo}/resolve/{revision}/{path}`: the stable download URL of a file."""
        return f"{self.endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"

    def _api(self, *segments: str) -> str:
        return f"{self.endpoint}/api/" + "/".join(segments)

    # ---- requests ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _deadline(self, ctx: _Context) -> AsyncIterator[None]:
        """One overall deadline for an API call; running out is a HubError naming the endpoint."""
        loop = asyncio.get_running_loop()
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
        ctx: _Context,
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
        while True:
            try:
                reply = await self._send(method, url, params, follow_redirects, ctx, consume)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                failures += 1
                if failures >= 3:
                    detail = plain(self.scrub(str(exc) or type(exc).__name__))[:200]
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
        ctx: _Context,
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
                    url = urljoin(str(response.url), location)
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

    def _error_for(self, reply: _Reply, ctx: _Context) -> HubError:
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
        ctx: _Context,
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

    # ---- API --------------------------------------------------------------------------------

    async def search(self, query: str, limit: int | None = None) -> list[SearchResult]:
        """GGUF repos matching `query`, most downloaded first (cached in memory briefly)."""
        limit = limit or self.search_limit
        key = (query, limit)
        cached = self._search_cache.get(key)
        now = self._clock()
        if cached and cached[0] > now:
            return list(cached[1])
        params = [
            ("search", query),
            ("filter", "gguf"),
            ("sort", "downloads"),
            ("direction", "-1"),
            ("limit", str(limit)),
        ] + [("expand", e) for e in ("downloads", "likes", "gated", "lastModified", "tags")]
        ctx = _Context(what=f"search {plain(query)!r}")
        async with self._deadline(ctx):
            listing = await self._paged(
                self._api("models"),
                ctx,
                params,
                _search_result,
                max_entries=max(MAX_SEARCH_ENTRIES, limit),
                want=limit,
            )
        results = listing.items[:limit]
        self._search_cache[key] = (now + self.search_cache_seconds, results)
        return list(results)

    def clear_search_cache(self) -> None:
        self._search_cache.clear()

    async def repo_info(self, repo: str, revision: str = "main") -> RepoInfo:
        """Repo metadata at `revision`, including the commit sha it points at."""
        check_repo_id(repo)
        ctx = _Context(what=f"repo {repo}", repo=repo, revision=revision)
        url = self._api("models", repo, "revision", quote(revision, safe=""))
        params = [("expand", name) for name in _INFO_FIELDS]
        async with self._deadline(ctx):
            data = (await self._request("GET", url, ctx, params=params)).json()
        if not isinstance(data, dict):
            raise HubError(f"the Hub sent an unexpected reply for {repo}", kind="bad_response")
        sha = data.get("sha")
        canonical = data.get("id")
        if not (
            isinstance(canonical, str)
            and canonical.lower() == repo.lower()
            and is_valid_repo_id(canonical)
        ):
            canonical = repo  # the Hub matches ids case-insensitively; keep its spelling
        return RepoInfo(
            id=canonical,
            sha=sha.lower() if isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{40}", sha) else None,
            gated=bool(data.get("gated")),
            private=bool(data.get("private")),
            license=_license_of(data),
            downloads=_int(data.get("downloads")),
            likes=_int(data.get("likes")),
            last_modified=plain(data["lastModified"])[:40]
            if isinstance(data.get("lastModified"), str)
            else None,
            tags=_tags(data),
        )

    async def list_tree(self, repo: str, revision: str = "main") -> TreeListing:
        """Every file of the repo (recursive), up to `max_tree_entries` entries.

        Unsafe paths are set aside instead of returned. A path listed twice with the same size
        and hash is kept once; listed twice with different ones, the listing cannot be trusted
        and it is a HubError (before anything is downloaded from it).
        """
        check_repo_id(repo)
        ctx = _Context(what=f"file list of {repo}", repo=repo, revision=revision)
        url = self._api("models", repo, "tree", quote(revision, safe=""))
        async with self._deadline(ctx):
            listing = await self._paged(
                url, ctx, [("recursive", "true")], _tree_entry, max_entries=self.max_tree_entries
            )
        files: dict[str, HubFile] = {}
        skipped: dict[str, SkippedPath] = {}
        for entry in listing.items:
            if isinstance(entry, SkippedPath):
                skipped.setdefault(entry.path, entry)
                continue
            known = files.get(entry.path)
            if known is None:
                files[entry.path] = entry
            elif (known.size, known.sha256, known.lfs) != (entry.size, entry.sha256, entry.lfs):
                raise HubError(
                    f"the Hub listed {entry.display!r} twice in {repo} with different sizes or "
                    f"SHA-256 ({known.size} vs {entry.size} bytes); not downloading from a "
                    "listing that contradicts itself",
                    kind="bad_response",
                )
        return TreeListing(
            files=list(files.values()),
            skipped=list(skipped.values()),
            truncated_at=self.max_tree_entries if listing.truncated else None,
        )

    async def repo_files(self, repo: str, revision: str = "main") -> RepoFiles:
        """The repo's GGUF files grouped by quantisation, with its commit, gating and licence."""
        info, tree = await asyncio.gather(
            self.repo_info(repo, revision), self.list_tree(repo, revision)
        )
        ggufs = assign_local_names([f for f in tree.files if is_gguf(f.path)])
        quants, other = group_files(ggufs)
        return RepoFiles(
            repo=info.id,
            revision=revision,
            commit=info.sha,
            quants=quants,
            mmprojs=sorted((f for f in ggufs if f.is_mmproj), key=lambda f: f.path),
            other=other,
            skipped=tree.skipped,
            gated=info.gated,
            license=info.license,
            truncated_at=tree.truncated_at,
        )

    async def check_access(self, repo: str, path: str, revision: str = "main") -> None:
        """HEAD the file's resolve URL without following it; raise HubError if refused."""
        ctx = _Context(what=f"{repo}/{plain(path)}", repo=repo, revision=revision, path=path)
        async with self._deadline(ctx):
            await self._request(
                "HEAD", self.resolve_url(repo, path, revision), ctx, follow_redirects=False
            )

    async def read_gguf_header(self, repo: str, path: str, revision: str = "main"):
        """GGUF header facts of a Hub file read with Range requests: (GGUFInfo, bytes_fetched)."""
        from gguf_tui.hub.remote import read_remote_gguf

        ctx = _Context(what=f"header of {repo}/{plain(path)}", repo=repo, revision=revision)
        ctx.url = self.resolve_url(repo, path, revision)
        async with self._deadline(ctx):
            return await read_remote_gguf(
                ctx.url, self._get_session(), headers=self.auth_headers()
            )


def _tree_entry(item: object) -> HubFile | SkippedPath | None:
    """One raw tree entry as a HubFile, a SkippedPath (unsafe path) or None (not a file)."""
    if not isinstance(item, dict) or item.get("type") != "file":
        return None
    path = item.get("path")
    if not isinstance(path, str):
        return None
    reason = check_repo_path(path)
    if reason:
        return SkippedPath(plain(path)[:300], reason)
    lfs = item.get("lfs") if isinstance(item.get("lfs"), dict) else None
    size = item.get("size")
    if lfs and isinstance(lfs.get("size"), int):
        size = lfs["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        size = None
    sha = valid_sha256(lfs.get("oid")) if lfs else None
    return annotate(path, size, sha, lfs=lfs is not None)


def _search_result(item: object) -> SearchResult | None:
    if not isinstance(item, dict):
        return None
    repo = item.get("id") or item.get("modelId")
    if not isinstance(repo, str) or not is_valid_repo_id(repo):
        return None  # not a name we could ever pull; leave it out
    last_modified = item.get("lastModified")
    return SearchResult(
        id=repo,
        downloads=_int(item.get("downloads")),
        likes=_int(item.get("likes")),
        gated=bool(item.get("gated")),
        last_modified=plain(last_modified)[:40] if isinstance(last_modified, str) else None,
        tags=_tags(item),
    )
