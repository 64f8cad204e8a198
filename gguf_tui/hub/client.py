"""Async client for the Hugging Face Hub HTTP API: search, repo info, tree listing, access checks.

What the endpoints mean lives here; how requests travel (redirects, token, retries, the
`hub.api_timeout` deadline, streamed and capped lists) lives in `gguf_tui.hub.transport`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from gguf_tui.hub.errors import HubError
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
from gguf_tui.hub.transport import (  # noqa: F401 - next_link and _UNSET are re-exported
    _UNSET,
    API_TIMEOUT,
    CallContext,
    HubTransport,
    next_link,
)
from gguf_tui.proxies import ProxyRoutes
from gguf_tui.textsafe import plain

SEARCH_CACHE_SECONDS = 60.0
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# A repo tree is read up to this many entries: a listing of 100k entries took 19 s and 250 MB,
# and no GGUF repo comes near it (the biggest list a few hundred files).
MAX_TREE_ENTRIES = 20_000
MAX_SEARCH_ENTRIES = 5_000
# repo_info asks only for the fields it reads: without `expand` the Hub also sends `siblings`,
# one entry per file, which for a huge repo is megabytes of JSON nobody looks at.
_INFO_FIELDS = ("sha", "gated", "private", "cardData", "downloads", "likes", "lastModified", "tags")


def valid_sha256(value: object) -> str | None:
    """`value` lower-cased if it is a 64-hex SHA-256 (as in `lfs.oid`), else None."""
    if not isinstance(value, str):
        return None
    value = value.strip().strip('"').lower()
    return value if _SHA256_RE.match(value) else None


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


class HubClient(HubTransport):
    """A Hub API client bound to one endpoint and (optionally) one token (see HubTransport)."""

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
        fallback_endpoints: Sequence[str] = (),
        proxy_routes: ProxyRoutes | None = None,
    ) -> None:
        super().__init__(
            endpoint,
            session=session,
            token=token,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_rate_limit_retries=max_rate_limit_retries,
            max_retry_after=max_retry_after,
            api_timeout=api_timeout,
            sleep=sleep,
            clock=clock,
            fallback_endpoints=fallback_endpoints,
            proxy_routes=proxy_routes,
        )
        self._search_cache: dict[tuple[str, int], tuple[float, list[SearchResult]]] = {}
        self.search_cache_seconds = search_cache_seconds
        self.search_limit = search_limit
        self.max_tree_entries = max_tree_entries

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
            fallback_endpoints=getattr(config.hub, "fallback_endpoints", ()),
            proxy_routes=ProxyRoutes.from_config(config),
        )

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- URLs -------------------------------------------------------------------------------

    def resolve_url(self, repo: str, path: str, revision: str = "main") -> str:
        """`{endpoint}/{repo}/resolve/{revision}/{path}`: the stable download URL of a file."""
        return f"{self.endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"

    def _api(self, *segments: str) -> str:
        return f"{self.endpoint}/api/" + "/".join(segments)

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
        ctx = CallContext(what=f"search {plain(query)!r}")
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
        ctx = CallContext(what=f"repo {repo}", repo=repo, revision=revision)
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
        ctx = CallContext(what=f"file list of {repo}", repo=repo, revision=revision)
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
        ctx = CallContext(what=f"{repo}/{plain(path)}", repo=repo, revision=revision, path=path)
        async with self._deadline(ctx):
            await self._request(
                "HEAD", self.resolve_url(repo, path, revision), ctx, follow_redirects=False
            )

    async def read_gguf_header(self, repo: str, path: str, revision: str = "main"):
        """GGUF header facts of a Hub file read with Range requests: (GGUFInfo, bytes_fetched)."""
        from gguf_tui.hub.remote import read_remote_gguf

        ctx = CallContext(what=f"header of {repo}/{plain(path)}", repo=repo, revision=revision)
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
