"""A local imitation of the Hugging Face Hub: the API on 127.0.0.1, a "CDN" on 127.0.0.2.

What it imitates (enough for the Hub client, the download engine and the TUI):

- `GET /api/models?search=&filter=&sort=downloads&direction=-1&limit=` with `Link: <...>;
  rel="next"` paging (`cursor=` offsets; `search_page_size` per page).
- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: id, sha, gated, cardData.
- `GET /api/models/{repo}/tree/{rev}[/{folder}]?recursive=true`: entries with `lfs.oid`/`lfs.size`,
  paged via Link (`tree_page_size`).
- `POST /api/models/{repo}/paths-info/{rev}` (form fields `paths`): those files' tree entries
  (Hub mirrors such as Olah ask it before serving a file).
- `GET|HEAD /{repo}/resolve/{rev}/{path}`: for LFS files a 302 to a signed CDN URL
  (`?Expires=...&X-Amz-Signature=...`) with `X-Linked-Etag: "<sha256>"`, `X-Linked-Size`,
  `X-Repo-Commit`; small non-LFS files are served directly. Errors carry `X-Error-Code`
  (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and `X-Error-Message`.
- Gated repos: metadata and tree are public, file contents need `Authorization: Bearer <token>`
  with a token in `HubSim.tokens` (none: 401 GatedRepo; another token: 403 GatedRepo).
- The CDN (different host, so a client that leaks `Authorization` across hosts is caught):
  GET/HEAD with single `Range` (206 + `Content-Range`), `If-Range`, `ETag: "<sha256>"`,
  `Last-Modified`, 416 past the end, signatures and expiry checked (403 when bad or expired).

Every request is recorded per host (`hub.requests_to("cdn")`), so tests can assert that the
CDN never saw `Authorization`. Faults: `fail(...)` answers chosen requests with a status (429 +
`Retry-After`, 500, ...), `expire_signed_urls()` / `signed_url_max_uses` / `signed_url_ttl`
make signed URLs answer `expired_status` (403), `cdn_rate` throttles, `cdn_drop_after` cuts a
response short, `cdn_corrupt_times` flips a byte, `cdn_ignore_range` answers 200 to Range.
`tree_extra` appends raw entries to a repo's tree listing (e.g. one path listed twice); repo
info honours `expand=` as the Hub does. `cache_seconds` makes resolve redirects and CDN answers
cacheable (`Cache-Control`, `Expires`), for the caching proxy tests.

Use it from an async test:  `async with HubSim() as hub: hub.add_repo(...); hub.endpoint`
from sync code (e.g. `gguf_tui.cli.main`, which runs its own event loop): `with HubSim() as hub:`
(it then serves from a background thread), or from a shell:
`python -m tests.helpers.hubsim --port 8765` (demo repos; prints the endpoint and a token).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterable

from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from tests.helpers.hubsim_cdn import CdnMixin
from tests.helpers.hubsim_data import (  # noqa: F401 - re-exported for tests
    RecordedRequest,
    SimFile,
    SimRepo,
    _Fault,
    _Signed,
    gguf_bytes,
)

DEFAULT_TOKEN = "hf_simTOKENdoNotLeak0123456789"


class HubSim(CdnMixin):
    """The simulated Hub. Start with `async with` (same loop) or `with` (background thread)."""

    def __init__(
        self,
        repos: Iterable[SimRepo] = (),
        *,
        token: str = DEFAULT_TOKEN,
        api_host: str = "127.0.0.1",
        cdn_host: str = "127.0.0.2",
        api_port: int = 0,
        cdn_port: int = 0,
        search_page_size: int = 100,
        tree_page_size: int = 1000,
        signed_url_ttl: float = 3600.0,
    ) -> None:
        self.repos: dict[str, SimRepo] = {}
        for repo in repos:
            self.repos[repo.id.lower()] = repo
        self.tokens: set[str] = {token} if token else set()
        self.token = token
        self.api_host, self.cdn_host = api_host, cdn_host
        self.api_port, self.cdn_port = api_port, cdn_port
        self.search_page_size = search_page_size
        self.tree_page_size = tree_page_size
        self.signed_url_ttl = signed_url_ttl
        self.signed_url_max_uses: int | None = None
        self.expired_status = 403
        self.cdn_ignore_range = False
        self.cdn_rate: int | None = None  # bytes per second per response
        self.cdn_drop_after: int | None = None  # cut responses after this many body bytes
        self.cdn_drop_times = 0  # ... for this many responses (0: forever while set)
        self.cdn_corrupt_times = 0  # flip one byte in the next N CDN bodies
        # Seconds for which resolve redirects and CDN answers say they may be cached
        # (Cache-Control + Expires), as a caching proxy needs; None: no caching headers.
        self.cache_seconds: int | None = None
        # Raw entries appended to a repo's tree listing (key: lower-case repo id), e.g. the same
        # path listed twice, as a broken mirror does.
        self.tree_extra: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._signed: dict[str, _Signed] = {}
        self._last_serial = 0
        self._expired_up_to = 0
        self._secret = hashlib.sha256(str(time.time_ns()).encode()).digest()
        self._blobs: dict[str, SimFile] = {}
        self._runners: list[web.AppRunner] = []
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # ---- configuration ------------------------------------------------------------------

    def add_repo(
        self, repo_id: str, files: dict[str, bytes | Path | SimFile] | None = None, **kwargs: Any
    ) -> SimRepo:
        """Add (or replace) a repo; `files` maps paths to bytes, Paths or SimFiles."""
        repo = SimRepo(id=repo_id, **kwargs)
        for path, content in (files or {}).items():
            self.add_file(repo, path, content)
        self.repos[repo_id.lower()] = repo
        return repo

    def add_file(self, repo: SimRepo | str, path: str, content: bytes | Path | SimFile) -> SimFile:
        if isinstance(repo, str):
            repo = self.repos[repo.lower()]
        sim_file = content if isinstance(content, SimFile) else SimFile(path=path, content=content)
        sim_file.path = path
        repo.files[path] = sim_file
        return sim_file

    def fail(
        self,
        status: int,
        *,
        host: str = "api",
        times: int = 1,
        headers: dict[str, str] | None = None,
        path_contains: str | None = None,
        method: str | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer the next `times` matching requests on `host` with `status` instead."""
        self._faults.append(
            _Fault(host, status, times, dict(headers or {}), path_contains, method, body)
        )

    def expire_signed_urls(self) -> None:
        """Every signed URL handed out so far answers `expired_status` from now on."""
        self._expired_up_to = self._last_serial

    def requests_to(self, host: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.host == host]

    def downloads_started(self, file_name: str) -> int:
        """GETs of a file's resolve URL (each redirects to the CDN: one download started)."""
        return sum(
            1
            for r in self.requests_to("api")
            if r.method == "GET" and "/resolve/" in r.path_qs and r.path_qs.endswith(file_name)
        )

    def clear_requests(self) -> None:
        self.requests.clear()

    @property
    def endpoint(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def cdn_origin(self) -> str:
        return f"http://{self.cdn_host}:{self.cdn_port}"

    def resolve_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> HubSim:
        api = web.Application(middlewares=[self._middleware("api")])
        api.router.add_get("/api/models", self._search)
        api.router.add_get("/api/models/{owner}/{name}", self._info)
        api.router.add_get("/api/models/{owner}/{name}/revision/{rev}", self._info)
        api.router.add_get("/api/models/{owner}/{name}/tree/{rev}", self._tree)
        api.router.add_get("/api/models/{owner}/{name}/tree/{rev}/{folder:.*}", self._tree)
        api.router.add_post("/api/models/{owner}/{name}/paths-info/{rev}", self._paths_info)
        api.router.add_route("*", "/{owner}/{name}/resolve/{rev}/{path:.*}", self._resolve)
        cdn = web.Application(middlewares=[self._middleware("cdn")])
        cdn.router.add_route("*", "/repos/{a}/{b}/{key}", self._cdn)
        for app, host, port, attr in (
            (api, self.api_host, self.api_port, "api_port"),
            (cdn, self.cdn_host, self.cdn_port, "cdn_port"),
        ):
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            self._runners.append(runner)
            sockets = site._server.sockets  # type: ignore[union-attr]
            setattr(self, attr, sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> HubSim:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __enter__(self) -> HubSim:
        """Serve from a background thread with its own event loop (for synchronous tests)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="hubsim", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread_loop is not None and self._thread is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(30)
            self._thread = None
            self._thread_loop = None

    # ---- plumbing -----------------------------------------------------------------------

    def _middleware(self, host: str):
        @web.middleware
        async def middleware(request: web.Request, handler):
            record = RecordedRequest(host, request.method, request.path_qs, dict(request.headers))
            self.requests.append(record)
            fault = self._take_fault(host, request)
            if fault is not None:
                response = web.Response(status=fault.status, headers=fault.headers, body=fault.body)
            else:
                response = await handler(request)
            record.status = response.status
            return response

        return middleware

    def _take_fault(self, host: str, request: web.Request) -> _Fault | None:
        for fault in self._faults:
            if fault.host != host or fault.times <= 0:
                continue
            if fault.path_contains and fault.path_contains not in request.path_qs:
                continue
            if fault.method and fault.method != request.method:
                continue
            fault.times -= 1
            return fault
        return None

    def _repo(self, request: web.Request) -> SimRepo | None:
        return self.repos.get(f"{request.match_info['owner']}/{request.match_info['name']}".lower())

    @staticmethod
    def _error(status: int, code: str | None, message: str) -> web.Response:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        return web.json_response({"error": message}, status=status, headers=headers)

    def _not_found(self, request: web.Request) -> web.Response:
        return self._error(404, "RepoNotFound", "Repository not found")

    def _page_link(self, request: web.Request, cursor: int) -> str:
        query = dict(request.query)
        query["cursor"] = str(cursor)
        return f'<{self.endpoint}{request.path}?{urlencode(query)}>; rel="next"'

    # ---- API ----------------------------------------------------------------------------

    async def _search(self, request: web.Request) -> web.Response:
        query = request.query.get("search", "").lower()
        tag = request.query.get("filter")
        matches = [
            repo
            for repo in self.repos.values()
            if query in repo.id.lower() and (not tag or tag in repo.tags)
        ]
        reverse = request.query.get("direction", "-1") == "-1"
        matches.sort(key=lambda r: (r.downloads, r.id), reverse=reverse)
        limit = int(request.query.get("limit") or self.search_page_size)
        page_size = max(1, min(limit, self.search_page_size))
        cursor = int(request.query.get("cursor") or 0)
        page = matches[cursor : cursor + page_size]
        headers = {}
        if cursor + page_size < len(matches):
            headers["Link"] = self._page_link(request, cursor + page_size)
        body = [
            {
                "_id": hashlib.md5(r.id.encode()).hexdigest()[:24],
                "id": r.id,
                "downloads": r.downloads,
                "likes": r.likes,
                "gated": "manual" if r.gated else False,
                "lastModified": r.last_modified,
                "tags": r.tags,
                "private": False,
            }
            for r in page
        ]
        return web.json_response(body, headers=headers)

    async def _info(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return self._not_found(request)
        revision = request.match_info.get("rev", "main")
        commit = repo.commit_for(revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        info = {
                "_id": hashlib.md5(repo.id.encode()).hexdigest()[:24],
                "id": repo.id,
                "modelId": repo.id,
                "sha": commit,
                "gated": "manual" if repo.gated else False,
                "private": False,
                "downloads": repo.downloads,
                "likes": repo.likes,
                "tags": repo.tags,
                "lastModified": repo.last_modified,
                "cardData": {"license": repo.license} if repo.license else {},
                "siblings": [{"rfilename": path} for path in repo.files],
            }
        expand = request.query.getall("expand", [])
        if expand:  # as the Hub does: only the fields asked for, plus the ids
            info = {k: v for k, v in info.items() if k in ("_id", "id", *expand)}
        return web.json_response(info)

    @staticmethod
    def _file_entry(sim_file: SimFile) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": sim_file.git_oid,
            "size": sim_file.size,
            "path": sim_file.path,
        }
        if sim_file.lfs:
            entry["lfs"] = {
                "oid": sim_file.advertised_sha256,
                "size": sim_file.size,
                "pointerSize": 134,
            }
        return entry

    async def _paths_info(self, request: web.Request) -> web.Response:
        """`POST .../paths-info/{rev}` with form fields `paths`: the entries of those files (what
        Hub mirrors such as Olah ask before serving a file)."""
        repo = self._repo(request)
        if repo is None:
            return self._not_found(request)
        if repo.commit_for(request.match_info["rev"]) is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        form = await request.post()
        wanted = [str(path) for path in form.getall("paths", [])]
        entries = [self._file_entry(repo.files[path]) for path in wanted if path in repo.files]
        return web.json_response(entries)

    async def _tree(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return self._not_found(request)
        if repo.commit_for(request.match_info["rev"]) is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        folder = request.match_info.get("folder", "").strip("/")
        recursive = request.query.get("recursive", "").lower() in ("true", "1")
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path, sim_file in repo.files.items():
            if folder and not path.startswith(folder + "/"):
                continue
            relative = path[len(folder) + 1 :] if folder else path
            parts = relative.split("/")
            for depth in range(1, len(parts)):
                folders.add("/".join(([folder] if folder else []) + parts[:depth]))
            if not recursive and len(parts) > 1:
                continue
            entries.append(self._file_entry(sim_file))
        for name in sorted(folders):
            if recursive or "/" not in name[len(folder) + 1 if folder else 0 :]:
                entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": name})
        entries.sort(key=lambda e: (e["type"] != "directory", e["path"]))
        entries += self.tree_extra.get(repo.id.lower(), [])
        cursor = int(request.query.get("cursor") or 0)
        page = entries[cursor : cursor + self.tree_page_size]
        headers = {}
        if cursor + self.tree_page_size < len(entries):
            headers["Link"] = self._page_link(request, cursor + self.tree_page_size)
        return web.json_response(page, headers=headers)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        repo = self._repo(request)
        if repo is None:
            return self._not_found(request)
        if repo.gated:
            auth = request.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            if token not in self.tokens:
                message = (
                    f"Access to model {repo.id} is restricted. You must have access to it and "
                    "be authenticated to access it. Please log in."
                )
                return self._error(403 if token else 401, "GatedRepo", message)
        commit = repo.commit_for(request.match_info["rev"])
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        sim_file = repo.files.get(request.match_info["path"])
        if sim_file is None:
            return self._error(404, "EntryNotFound", "Entry not found")
        headers = {"X-Repo-Commit": commit}
        if not sim_file.lfs:
            headers["ETag"] = f'"{sim_file.git_oid}"'
            return await self._serve(request, sim_file, headers, etag=headers["ETag"])
        location = self._sign(sim_file)
        headers.update(self._cache_headers())
        headers.update(
            {
                "Location": location,
                "X-Linked-Etag": f'"{sim_file.advertised_sha256}"',
                "X-Linked-Size": str(sim_file.size),
                "ETag": f'"{sim_file.git_oid}"',
            }
        )
        return web.Response(status=302, headers=headers)

    def _cache_headers(self) -> dict[str, str]:
        if self.cache_seconds is None:
            return {}
        return {
            "Cache-Control": f"public, max-age={self.cache_seconds}",
            "Expires": formatdate(time.time() + self.cache_seconds, usegmt=True),
        }


def hub_config(endpoint: str, store: Path | str) -> Any:
    """A default Config pointed at `endpoint` and `store`, untouched by the user's files or env."""
    from gguf_tui.config import Config

    config = Config(store=Path(store).absolute())
    config.hub.endpoint = endpoint.rstrip("/")
    return config


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.helpers.hubsim`: serve the demo repos (the dashboard: hubsim_demo)."""
    import sys

    from tests.helpers.hubsim_demo import main as demo_main

    return demo_main(["--serve-only", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
