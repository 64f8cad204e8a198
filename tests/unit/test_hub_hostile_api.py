"""The Hub client against API servers that misbehave: trickling, huge or deeply nested replies.

Each server here is a real aiohttp app on 127.0.0.1; the CLI runs as a real `gguf-tui` process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from aiohttp import web

from gguf_tui.hub import HubClient, HubError
from tests.conftest import PYTHON, cli_subprocess_env

SHA = "a" * 40
TOKEN = "hf_hostileTOKENneverShown0123"


class HostileApi:
    """A Hub API imitation whose tree (and optionally every endpoint) misbehaves as told."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | trickle | nested | huge_page | paged
        self.entries = 100_000
        self.page_size = 1000
        self.requests: list[str] = []
        self.trickle_started = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    async def __aenter__(self) -> HostileApi:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _entry(self, index: int) -> dict:
        path = f"shard{index // 1000:03d}/file-{index:06d}.bin"
        return {"type": "file", "oid": "0" * 40, "size": 100 + index, "path": path}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if self.mode == "trickle":
            return await self._trickle(request)
        if self.mode == "nested":
            return web.Response(body=b"[" * 200_000, content_type="application/json")
        if "/tree/" in request.path:
            if self.mode == "huge_page":
                return await self._huge_page(request)
            if self.mode == "paged":
                return self._page(request)
            return web.json_response([{"type": "file", "size": 10, "path": "m-Q4_K_M.gguf"}])
        if request.path == "/api/models":
            return web.json_response([{"id": "o/r", "downloads": 1}])
        return web.json_response({"id": "o/r", "sha": SHA})

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        """Headers at once, then one byte every 0.3 s for ever: never idle long enough to time out."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        self.trickle_started.set()
        try:
            await response.write(b"[")
            while True:
                await asyncio.sleep(0.3)
                await response.write(b" ")
        except ConnectionError:  # the client gave up, as it should
            return response

    async def _huge_page(self, request: web.Request) -> web.StreamResponse:
        """All entries in ONE page, written as they are generated (no Link header)."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            await response.write(b"[")
            batch = []
            for index in range(self.entries):
                batch.append(("," if index else "") + json.dumps(self._entry(index)))
                if len(batch) == 500:
                    await response.write("".join(batch).encode())
                    batch = []
            await response.write(("".join(batch) + "]").encode())
            await response.write_eof()
        except ConnectionError:  # the client stopped reading at its cap
            pass
        return response

    def _page(self, request: web.Request) -> web.Response:
        cursor = int(request.query.get("cursor") or 0)
        end = min(cursor + self.page_size, self.entries)
        headers = {}
        if end < self.entries:
            headers["Link"] = f'<{self.endpoint}{request.path}?recursive=true&cursor={end}>; rel="next"'
        return web.json_response([self._entry(i) for i in range(cursor, end)], headers=headers)


@pytest.fixture
async def api():
    async with HostileApi() as running:
        yield running


@pytest.fixture
def short_deadline_config(config_file: Path) -> Path:
    """The test config with a 1-second Hub API deadline."""
    config_file.write_text(config_file.read_text() + "hub:\n  api_timeout: 1\n")
    return config_file


async def _gguf_tui(config_file: Path, endpoint: str, *args: str, token: str | None = None):
    env = cli_subprocess_env(config_file)
    env["HF_ENDPOINT"] = endpoint
    if token:
        env["HF_TOKEN"] = token
    return await asyncio.create_subprocess_exec(
        PYTHON, "-m", "gguf_tui", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _run(config_file: Path, endpoint: str, *args: str, token: str | None = None):
    process = await _gguf_tui(config_file, endpoint, *args, token=token)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


# ---- 10.10: an overall deadline on every API call ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "endpoint_path"),
    [
        (("search", "qwen3"), "/api/models"),
        (("files", "o/r"), "/api/models/o/r/"),
        (("pull", "o/r:Q4_K_M"), "/api/models/o/r/"),
    ],
)
async def test_trickling_api_hits_the_deadline(api, short_deadline_config, args, endpoint_path):
    api.mode = "trickle"
    code, out, err = await _run(short_deadline_config, api.endpoint, *args, token=TOKEN)
    assert code == 1, err
    [line] = err.strip().splitlines()[-1:]
    assert "did not answer within 1 s" in line and "hub.api_timeout" in line
    assert f"{api.endpoint}{endpoint_path}" in line  # names the endpoint...
    assert "?" not in line and "search=" not in line  # ...without its query string
    assert TOKEN not in err and "Traceback" not in err
    assert "resume state saved" not in err


async def test_deadline_covers_the_whole_call_in_the_client(api) -> None:
    api.mode = "trickle"
    async with HubClient(api.endpoint, token=None, api_timeout=1, read_timeout=30) as client:
        with pytest.raises(HubError) as caught:
            await client.repo_files("o/r")
    assert caught.value.kind == "timeout"


async def test_deadline_covers_remote_header_reads(api) -> None:
    api.mode = "trickle"
    async with HubClient(api.endpoint, token=None, api_timeout=1, read_timeout=30) as client:
        with pytest.raises(HubError) as caught:
            await client.read_gguf_header("o/r", "m-Q4_K_M.gguf")
    assert caught.value.kind == "timeout"
    assert f"{api.endpoint}/o/r/resolve/main/m-Q4_K_M.gguf" in str(caught.value)


async def test_ctrl_c_while_resolving_does_not_claim_saved_state(api, config_file, store):
    api.mode = "trickle"  # the default 60 s deadline: the pull is still waiting on the Hub
    process = await _gguf_tui(config_file, api.endpoint, "pull", "o/r:Q4_K_M")
    await asyncio.wait_for(api.trickle_started.wait(), 30)
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 15)
    text = err.decode()
    assert process.returncode == 130, text
    assert "interrupted before any download started" in text
    assert "resume state saved" not in text
    assert "Traceback" not in text


# ---- 10.14: deeply nested JSON -----------------------------------------------------------------


@pytest.mark.parametrize("args", [("search", "x"), ("files", "o/r"), ("pull", "o/r:Q4_K_M")])
async def test_deeply_nested_json_is_malformed_not_a_recursion_error(api, config_file, args):
    api.mode = "nested"
    code, out, err = await _run(config_file, api.endpoint, *args)
    assert code == 1, err
    line = err.strip().splitlines()[-1]
    assert "the Hub sent malformed JSON for" in line and api.endpoint + "/api/models" in line
    assert "recursion" not in err and "Traceback" not in err


# ---- 10.11: a huge tree is capped, with a notice, in flat memory ------------------------------

_RSS_WRAPPER = (
    "import resource, sys\n"
    "from gguf_tui.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


async def _files_with_rss(config_file: Path, endpoint: str, *args: str) -> tuple[int, str, str, int]:
    env = cli_subprocess_env(config_file)
    env["HF_ENDPOINT"] = endpoint
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-c", _RSS_WRAPPER, "files", "o/r", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    text = err.decode()
    rss_kb = int(text.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return process.returncode, out.decode(), text, rss_kb


async def _baseline_rss(config_file: Path, api: HostileApi) -> int:
    api.mode = "ok"
    code, _, err, rss_kb = await _files_with_rss(config_file, api.endpoint)
    assert code == 0, err
    return rss_kb


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's unit")
async def test_one_huge_page_stops_at_the_cap_in_flat_memory(api, config_file):
    baseline_kb = await _baseline_rss(config_file, api)
    api.mode = "huge_page"
    code, out, err, rss_kb = await _files_with_rss(config_file, api.endpoint, "--json")
    assert code == 0, err
    assert "truncated at 20000 entries" in err
    assert json.loads(out)["truncated_at"] == 20000
    # Before: the whole page parsed at once, +60 MB here (250 MB reported); now it stays flat.
    assert rss_kb - baseline_kb < 30 * 1024, (baseline_kb, rss_kb)


async def test_paged_listing_stops_asking_at_the_cap(api, config_file):
    api.mode = "paged"
    code, out, err = await _run(config_file, api.endpoint, "files", "o/r")
    assert code == 0, err
    assert "note: the file list of o/r was truncated at 20000 entries" in err
    tree_pages = [path for path in api.requests if "/tree/" in path]
    assert len(tree_pages) == 20  # 20 pages of 1000, never the other 80


async def test_listing_exactly_at_the_cap_is_not_truncated(api) -> None:
    api.mode = "paged"
    api.entries = 30
    api.page_size = 10
    async with HubClient(api.endpoint, token=None, max_tree_entries=30) as client:
        assert (await client.list_tree("o/r")).truncated_at is None
    async with HubClient(api.endpoint, token=None, max_tree_entries=25) as client:
        tree = await client.list_tree("o/r")
    assert tree.truncated_at == 25 and len(tree.files) == 25


# ---- the one JSON reader: items split anywhere across chunks -----------------------------------


class PieceServer:
    """Serves a fixed body in pieces of `piece` bytes, flushing each (chunked encoding)."""

    def __init__(self, body: bytes, piece: int, status: int = 200) -> None:
        self.body, self.piece, self.status = body, piece, status

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=self.status, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(self.body), self.piece):
            await response.write(self.body[start : start + self.piece])
        await response.write_eof()
        return response


async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


@pytest.mark.parametrize("piece", [1, 3, 7, 64 * 1024])
async def test_streamed_list_survives_any_chunk_boundary(piece: int) -> None:
    import aiohttp

    from gguf_tui.hub.wire import json_array_items

    items = [{"path": "é-ü-文字.gguf", "size": 123456789}, 42, -1.5e10, "x\"y", [1, [2]], None, {}]
    body = (" [ " + " ,\n".join(json.dumps(i, ensure_ascii=False) for i in items) + " ] ").encode()
    runner, endpoint = await _serve(PieceServer(body, piece).handle)
    try:
        async with aiohttp.ClientSession() as session, session.get(endpoint + "/x") as response:
            got = [item async for item in json_array_items(response)]
    finally:
        await runner.cleanup()
    assert got == items


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"a": 1}', "expected a list"),
        (b"[1, 2", "ends inside the list"),
        (b"[1 2]", "expected ',' or ']'"),
        (b"[1,]", "not valid JSON"),
        (b"[1] [2]", "text after the end"),
        (b"[" + b"[" * 50_000, "nested too deeply"),
        (b'["\xff"]', "not UTF-8"),
    ],
)
async def test_streamed_list_errors_name_the_endpoint(body: bytes, why: str) -> None:
    import aiohttp

    from gguf_tui.hub.wire import json_array_items

    runner, endpoint = await _serve(PieceServer(body, 5).handle)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(endpoint + "/api/list?secret=1") as response:
                with pytest.raises(HubError) as caught:
                    [item async for item in json_array_items(response)]
    finally:
        await runner.cleanup()
    message = str(caught.value)
    assert why in message and f"{endpoint}/api/list" in message and "secret" not in message


async def test_nested_json_in_an_error_reply_still_gives_the_status_message(config_file) -> None:
    runner, endpoint = await _serve(PieceServer(b"[" * 100_000, 4096, status=404).handle)
    try:
        code, out, err = await _run(config_file, endpoint, "files", "o/r")
    finally:
        await runner.cleanup()
    assert code == 1
    assert "not found" in err and "recursion" not in err and "Traceback" not in err


def test_remote_json_is_parsed_in_one_place() -> None:
    """Every JSON parse in the Hub package goes through hub/wire.py (bounded, clear errors)."""
    import ast

    package = Path(__file__).resolve().parents[2] / "gguf_tui" / "hub"
    offenders = []
    for module in sorted(package.glob("*.py")):
        if module.name == "wire.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "json"
                and node.attr in ("loads", "load", "JSONDecoder")
            ):
                offenders.append(f"{module.name}:{node.lineno}")
    assert offenders == []
