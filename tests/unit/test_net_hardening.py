"""Hostile and broken servers against the download engine: empty answers, credentials in URLs,
bad validators and redirects, network outages, empty and impossibly large files.

Every server here is a real aiohttp server on 127.0.0.1; `pull` runs as its own process where a
wedge or a signal is what is being tested.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import stat
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from aiohttp import web

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.fsutil import state_file_mode
from gguf_tui.store.layout import StoreLayout
from gguf_tui.textsafe import redact_url
from tests.conftest import TEST_CONFIG, sha256_of, start_pull, visible_files
from tests.helpers.fileserver import Behaviour
from tests.helpers.hubsim import HubSim, gguf_bytes as sim_gguf_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, port: int = 0):
    """A one-handler aiohttp server on 127.0.0.1; yields its base URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()


def write_config(tmp_path: Path, store: Path, **downloads: object) -> Path:
    """The fast test config with some `downloads` keys changed."""
    text = TEST_CONFIG.format(store=store)
    for key, value in downloads.items():
        text += f"  {key}: {value}\n"
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return path


async def finish(process: asyncio.subprocess.Process, timeout: float) -> tuple[int, str, str]:
    """Wait for a `pull` process; kill it (and fail) if it outlives `timeout`."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.communicate()
        raise AssertionError(f"pull still running after {timeout} s") from None
    return process.returncode, out.decode(), err.decode()


def every_byte_under(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- 10.1: answers without bytes ---------------------------------------------------------------


def empty_206_server(requests: list[str]) -> Handler:
    """Every ranged GET: 206 with a plausible Content-Range and Content-Length: 0."""

    async def handler(request: web.Request) -> web.StreamResponse:
        requests.append(request.headers.get("Range", ""))
        first, _, last = request.headers.get("Range", "bytes=0-").removeprefix("bytes=").partition("-")
        end = int(last) if last else (8 << 20) - 1
        headers = {"Content-Range": f"bytes {first}-{end}/{8 << 20}", "ETag": '"e"'}
        return web.Response(status=206, headers=headers, body=b"")

    return handler


async def test_empty_206_answers_leave_pull_responsive_to_sigint(tmp_path, store):
    requests: list[str] = []
    config = write_config(tmp_path, store, retries=1000, outage_timeout=0)
    async with serve(empty_206_server(requests)) as base:
        process = await start_pull(config, f"{base}/m.gguf")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while len(requests) < 4 and loop.time() < deadline:  # the spin began after the second
            await asyncio.sleep(0.05)
        assert len(requests) >= 4, "the pull never retried the empty answers"
        process.send_signal(signal.SIGINT)
        code, _out, err = await finish(process, 10)
    assert code == 130, err
    assert "Traceback" not in err


async def test_empty_206_answers_are_failed_attempts_then_a_clear_failure(tmp_path, store):
    requests: list[str] = []
    config = write_config(tmp_path, store, retries=2)
    async with serve(empty_206_server(requests)) as base:
        process = await start_pull(config, f"{base}/m.gguf", "--connections", "1")
        code, _out, err = await finish(process, 20)
    assert code == 1
    assert "gave up after 3 failed attempts" in err and "held no bytes" in err
    assert len(requests) == 3  # one per attempt: retried with backoff, not spun
    assert visible_files(store) == []


# ---- 10.3: credentials in URLs -----------------------------------------------------------------

SECRET = "s3cretPW"


def basic_auth_server(data: bytes, seen: list[str], *, rate: int | None = None) -> Handler:
    """Serves `data` with ranges, only to `user:SECRET`."""
    expected = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, text="who are you")
        start = int(request.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        status = 206 if "Range" in request.headers else 200
        headers = {"ETag": '"v1"'}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(data) - start
        await response.prepare(request)
        for offset in range(start, len(data), 64 * 1024):
            await response.write(data[offset : offset + 64 * 1024])
            if rate:
                await asyncio.sleep(64 * 1024 / rate)
        return response

    return handler


def assert_private_state_files(store: Path) -> None:
    """0600; in a shared store (GGUF_TUI_TEST_SHARED=1) the group's as well: 0660, no more."""
    hidden = store / ".gguf-tui"
    state_files = list((hidden / "partials").glob("*.state.json")) + list((hidden / "jobs").glob("*.json"))
    assert state_files
    expected = 0o660 if state_file_mode(store) == 0o660 else 0o600
    for path in state_files:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


async def test_credentials_in_url_authenticate_but_never_reach_disk_or_status(
    tmp_path, store, config_file, cli, gguf_bytes
):
    seen: list[str] = []
    async with serve(basic_auth_server(gguf_bytes, seen, rate=1_000_000)) as base:
        url = base.replace("http://", f"http://user:{SECRET}@") + "/m.gguf"
        process = await start_pull(config_file, url, "--connections", "1")
        key = FileRequest(url=url, dest="m.gguf").key_hash
        state_path = StoreLayout(store).state_path(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline:
            try:
                if ResumeState.load(state_path).bytes_done > 0:
                    break
            except ResumeStateError:
                pass
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code, _out, err = await finish(process, 15)
        assert code == 130, err
        assert SECRET.encode() not in every_byte_under(store)
        assert_private_state_files(store)
        status = await cli("status")
        status_json = await cli("status", "--json")
        assert status.code == 0 and status_json.code == 0, status.err
        for result in (status, status_json):
            assert SECRET not in result.out + result.err
        assert "m.gguf" in status.out
        # The same pull resumes with the credentials it is given, and still writes none.
        process = await start_pull(config_file, url)
        code, out, err = await finish(process, 30)
    assert code == 0, err
    assert SECRET not in out + err
    assert sha256_of(store / "m.gguf") == sha256_of_bytes(gguf_bytes)
    assert SECRET.encode() not in every_byte_under(store)
    assert all(header.startswith("Basic ") for header in seen)


def sha256_of_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


async def wait_for_saved_bytes(partials: Path, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for path in partials.glob("*.state.json"):
            try:
                if ResumeState.load(path).bytes_done > 0:
                    return
            except ResumeStateError:
                pass
        await asyncio.sleep(0.05)
    raise AssertionError("no progress saved")


async def test_hf_endpoint_credentials_stay_out_of_the_store(config_file, cli, store, monkeypatch):
    async with HubSim() as hub:
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": sim_gguf_bytes(tensor_bytes=2 << 20, seed=1)})
        hub.cdn_rate = 1_000_000
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint.replace("http://", f"http://user:{SECRET}@"))
        process = await start_pull(config_file, "acme/Tiny-GGUF:Q4_K_M", "--connections", "1")
        await wait_for_saved_bytes(store / ".gguf-tui" / "partials")
        process.send_signal(signal.SIGINT)
        code, _out, err = await finish(process, 15)
        assert code == 130, err
        assert SECRET.encode() not in every_byte_under(store)
        assert_private_state_files(store)
        status = await cli("status")
        assert status.code == 0 and SECRET not in status.out + status.err
        hub.cdn_rate = None
        result = await cli("pull", "acme/Tiny-GGUF:Q4_K_M")
        assert result.code == 0, result.err
        resolve_auth = [r.headers.get("Authorization", "") for r in hub.requests if "/resolve/" in r.path_qs]
    assert resolve_auth and all(value.startswith("Basic ") for value in resolve_auth)
    assert SECRET not in result.out + result.err
    assert SECRET.encode() not in every_byte_under(store)


async def test_status_survives_an_old_state_that_holds_credentials(cli, store):
    layout = StoreLayout(store)
    layout.ensure()
    old = ResumeState(f"http://user:{SECRET}@example.com/m.gguf@main", "m.gguf", total_size=10)
    old.save(layout.state_path("0" * 32))
    for args in (("status",), ("status", "--json")):
        result = await cli(*args)
        assert result.code == 0, result.err
        assert SECRET not in result.out + result.err


def test_redact_url_never_raises_and_drops_userinfo():
    assert redact_url(f"http://user:{SECRET}") == "http://user"  # what `status` split off
    assert redact_url(f"http://u:{SECRET}@h:99999999/x?sig=1") == "http://h:99999999/x"
    assert redact_url(f"http://u:{SECRET}@[::1]:8080/x") == "http://[::1]:8080/x"


def test_state_files_are_group_writable_only_in_a_shared_store(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    assert state_file_mode(private) == 0o600
    assert state_file_mode(shared) == 0o660
    path = shared / ".gguf-tui" / "partials" / "x.state.json"
    old_umask = os.umask(0o022)
    try:
        ResumeState("http://h/x", "x.gguf").save(path, state_file_mode(shared))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660


# ---- 10.8: bad validators and locations ----------------------------------------------------------


async def test_etag_with_control_characters_plus_a_dropped_connection(tmp_path, store, gguf_bytes):
    """aiohttp's server refuses to send such headers, so this one speaks raw HTTP/1.1."""
    attempts: list[dict[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        attempts.append(headers)
        start = int(headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        size = len(gguf_bytes)
        lines = ["HTTP/1.1 206 Partial Content" if "Range" in headers else "HTTP/1.1 200 OK",
                 'ETag: "ab\x01cd"', "Last-Modified: not a date\x02",
                 f"Content-Length: {size - start}", "Connection: close"]
        if "Range" in headers:
            lines.append(f"Content-Range: bytes {start}-{size - 1}/{size}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        body = gguf_bytes[start:] if len(attempts) > 1 else gguf_bytes[: 512 * 1024]
        writer.write(body)  # the first answer is cut short: one dropped connection
        await writer.drain()
        writer.close()

    config = write_config(tmp_path, store)
    raw = await asyncio.start_server(handle, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{raw.sockets[0].getsockname()[1]}"
    try:
        for _ in range(2):  # the second pull finds the file placed: nothing wedged
            process = await start_pull(config, f"{base}/m.gguf", "--connections", "1")
            code, _out, err = await finish(process, 30)
            assert code == 0, err
    finally:
        raw.close()
    assert sha256_of(store / "m.gguf") == sha256_of_bytes(gguf_bytes)
    resumed = attempts[1]
    assert resumed["Range"] == f"bytes={512 * 1024}-" and "If-Range" not in resumed


async def test_poisoned_resume_state_is_discarded_with_a_notice(server, cli, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    request = FileRequest(url=url, dest="m.gguf")
    layout = StoreLayout(store)
    layout.ensure()
    layout.partial_path(request.key_hash).write_bytes(gguf_bytes[:1000])
    poisoned = ResumeState(request.resume_key, "m.gguf", total_size=len(gguf_bytes),
                           etag='"x\x01y"', ranges=[[0, 1000]])
    poisoned.save(layout.state_path(request.key_hash))
    with pytest.raises(ResumeStateError, match="ETag"):
        ResumeState.load(layout.state_path(request.key_hash))
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "discarded a partial download" in result.err
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


def redirecting_server(location: str, hits: list[str]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.Response(status=302, headers={"Location": location})

    return handler


async def test_redirect_to_an_invalid_port_fails_clearly(tmp_path, store):
    hits: list[str] = []
    config = write_config(tmp_path, store, retries=1)
    async with serve(redirecting_server("http://127.0.0.1:99999999/x.gguf", hits)) as base:
        process = await start_pull(config, f"{base}/m.gguf")
        code, _out, err = await finish(process, 20)
        assert code == 1
        assert "redirected to an unusable address" in err and "Traceback" not in err
        assert "retrying: retrying" not in err
    assert not list((store / ".gguf-tui" / "jobs").glob("*.json"))


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/m.gguf", "data:text/plain,GGUF"]
)
async def test_redirect_to_another_scheme_fails_at_once(tmp_path, store, location):
    hits: list[str] = []
    config = write_config(tmp_path, store, retries=5)
    async with serve(redirecting_server(location, hits)) as base:
        process = await start_pull(config, f"{base}/m.gguf")
        code, _out, err = await finish(process, 20)
    assert code == 1
    assert "unsupported address" in err and location.split(":")[0] + ":" in err
    assert len(hits) == 1  # not retried as a network error


# ---- 11.6: network outages -----------------------------------------------------------------------


async def test_pull_waits_out_an_outage_and_finishes_when_the_server_returns(
    tmp_path, store, gguf_bytes
):
    port = free_port()
    config = write_config(tmp_path, store, retries=1, outage_timeout=60)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=gguf_bytes)

    process = await start_pull(config, f"http://127.0.0.1:{port}/m.gguf")
    seen = []
    while not any("waiting for network (next try in" in line for line in seen):
        line = await asyncio.wait_for(process.stderr.readline(), 20)  # type: ignore[union-attr]
        assert line, f"the pull ended during the outage: {seen}"
        seen.append(line.decode())
    async with serve(handler, port):  # the server comes back on the same port
        code, _out, err = await finish(process, 30)
    assert code == 0, "".join(seen) + err
    assert sha256_of(store / "m.gguf") == sha256_of_bytes(gguf_bytes)


async def test_outage_longer_than_outage_timeout_fails(tmp_path, store):
    config = write_config(tmp_path, store, retries=1, outage_timeout=1)
    process = await start_pull(config, f"http://127.0.0.1:{free_port()}/m.gguf", "--json")
    code, out, err = await finish(process, 20)
    assert code == 1
    assert "without a working connection" in out + err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    waiting = [e for e in events if e["event"] == "retrying"]
    assert any(e["max_attempts"] == 0 and "waiting for network" in e["reason"] for e in waiting)


async def test_server_errors_keep_the_retry_count_during_a_long_outage_budget(
    tmp_path, store, server, gguf_bytes
):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(statuses=[(503, {})] * 10))
    config = write_config(tmp_path, store, retries=2, outage_timeout=0)
    process = await start_pull(config, url)
    code, _out, err = await finish(process, 20)
    assert code == 1 and "gave up after 3 failed attempts" in err
    assert len(server.requests("/m.gguf")) == 3


# ---- 10.14 and 11.11: sizes nothing can use -----------------------------------------------------


@pytest.mark.parametrize("connections", ["1", "8"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_empty_file_says_so(server, config_file, store, connections, chunked):
    url = server.add("/e.gguf", b"", Behaviour(chunked=chunked))
    process = await start_pull(config_file, url, "--connections", connections)
    code, _out, err = await finish(process, 20)
    assert code == 1
    assert "the server sent an empty file" in err
    assert "byte range" not in err
    assert visible_files(store) == []


async def test_exabyte_size_from_the_server_fails_and_leaves_nothing(tmp_path, store, config_file):
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_length = 10**18
        await response.prepare(request)
        await response.write(b"GGUF")
        request.transport.close()  # type: ignore[union-attr]
        return response

    async with serve(handler) as base:
        process = await start_pull(config_file, f"{base}/huge.gguf")
        code, _out, err = await finish(process, 20)
    assert code == 1
    assert "more than the whole disk" in err and "partial is kept" not in err
    hidden = store / ".gguf-tui"
    assert not list((hidden / "jobs").glob("*")) and not list((hidden / "partials").glob("*"))


async def test_exabyte_expected_size_fails_before_any_request(server, config, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    spec = JobSpec("m", [FileRequest(url=url, dest="m.gguf", expected_size=10**18)])
    async with Engine(config) as engine:
        job = await engine.wait(await engine.enqueue(spec))
    assert job.state == JobState.FAILED
    assert "more than the whole disk" in job.message and "partial is kept" not in job.message
    assert server.requests("/m.gguf") == []
    assert not list((store / ".gguf-tui" / "jobs").glob("*"))


# ---- the retry policy on its own (an injected clock: days of outage in milliseconds) ------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_outage_retries_are_capped_at_a_minute_and_stop_at_outage_timeout():
    from gguf_tui.config import DownloadsConfig
    from gguf_tui.engine.errors import NetworkError, RetriesExhausted
    from gguf_tui.engine.retries import RetryPolicy

    clock = FakeClock()
    policy = RetryPolicy(DownloadsConfig(retries=5, outage_timeout=6 * 3600), clock)
    waited = 0.0
    tries = []
    with pytest.raises(RetriesExhausted, match="6.0 h without a working connection"):
        while True:
            next_try = policy.next_try(NetworkError("cannot connect (refused)"))
            tries.append(next_try)
            assert next_try.delay <= 60.0
            clock.now += next_try.delay
            waited += next_try.delay
    assert 6 * 3600 - 1 < waited < 6 * 3600 + 61  # (float sums: a hair under is the deadline)
    assert [t.most for t in tries[:5]] == [5] * 5  # ordinary retries first
    assert all(t.most == 0 and t.reason.startswith("waiting for network (next try in ") for t in tries[5:])


def test_outage_timeout_zero_never_gives_up_and_server_errors_keep_their_count():
    from gguf_tui.config import DownloadsConfig
    from gguf_tui.engine.errors import NetworkError, RetriesExhausted, RetryableError
    from gguf_tui.engine.retries import RetryPolicy

    clock = FakeClock()
    policy = RetryPolicy(DownloadsConfig(retries=3, outage_timeout=0), clock)
    for _ in range(20_000):  # two weeks of a-minute-apart tries
        next_try = policy.next_try(NetworkError("timed out"))
        assert 0 < next_try.delay <= 60.0
        clock.now += next_try.delay
    for _ in range(3):
        policy.next_try(RetryableError("server answered 503"))
    with pytest.raises(RetriesExhausted, match="gave up after 4 failed attempts"):
        policy.next_try(RetryableError("server answered 503"))
