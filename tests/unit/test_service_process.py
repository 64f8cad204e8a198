"""The engine service as a real background process, attached to over its real Unix socket.

Each test has its own XDG_RUNTIME_DIR (short, under /tmp: a socket path must fit 108 bytes),
XDG_STATE_HOME and store; the fixture stops whatever service a test left running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gguf_tui.config import Config, load_config
from gguf_tui.engine.api import JobState, PullOptions, QueueMirror, StateChanged, StateReason
from gguf_tui.service.client import ServiceClient, ServiceError, VersionMismatch
from gguf_tui.service.paths import ServicePaths, service_paths
from gguf_tui.service.spawn import connect_or_start
from tests.conftest import REPO_ROOT, TEST_CONFIG, sha256_of, visible_files
from tests.helpers.fileserver import Behaviour

ENGINE_CONFIG = "engine:\n  idle_exit: {idle}\n  refresh_rate: 10\n"


@dataclass
class Svc:
    config: Config
    paths: ServicePaths
    config_file: Path
    runtime: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        return env

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gguf_tui", *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def service_pid(self) -> int | None:
        try:
            return int(self.paths.lock.read_text().strip())
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def make_svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Path, idle: float) -> Svc:
    runtime = Path(tempfile.mkdtemp(prefix="gt", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config_file = tmp_path / "svc.yaml"
    config_file.write_text(TEST_CONFIG.format(store=store) + ENGINE_CONFIG.format(idle=idle))
    monkeypatch.setenv("GGUF_TUI_CONFIG", str(config_file))
    config = load_config(config_file)
    return Svc(config, service_paths(config.store), config_file, runtime)


def stop_leftover(svc: Svc) -> None:
    pid = svc.service_pid()
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(svc.runtime, ignore_errors=True)


@pytest.fixture
def svc(tmp_path, monkeypatch, store):
    running = make_svc(tmp_path, monkeypatch, store, idle=120)
    yield running
    stop_leftover(running)


async def _attach(svc: Svc) -> tuple[ServiceClient, QueueMirror]:
    client = await connect_or_start(svc.config)
    return client, QueueMirror(await client.subscribe())


async def _until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_enqueue_through_the_service_completes_verified_and_logs_no_secret(server, svc, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    client, queue = await _attach(svc)
    try:
        signed = url + "?X-Amz-Signature=sekritsig&token=sekrittok"
        job_id = await client.enqueue(signed, PullOptions(sha256=server.sha256("/m.gguf"), name="m"))
        views = await asyncio.wait_for(queue.follow([job_id]), 30)
        assert views[job_id].state == JobState.COMPLETED
        assert views[job_id].bytes_done == len(gguf_bytes)
        assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
        assert visible_files(store) == ["m.gguf"]
        status = await client.status()
        assert status["clients"] == 1 and status["store"] == str(store)
    finally:
        await client.close()
    log = svc.paths.log.read_text()
    assert "enqueue" in log and "m: completed" in log
    assert "sekrit" not in log
    assert stat.S_IMODE(svc.paths.log.stat().st_mode) == 0o600


async def test_socket_and_its_folder_are_private(svc):
    client = await connect_or_start(svc.config)
    await client.close()
    folder = svc.paths.runtime_dir
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    socket_info = os.lstat(svc.paths.socket)
    assert stat.S_ISSOCK(socket_info.st_mode) and stat.S_IMODE(socket_info.st_mode) == 0o600
    assert socket_info.st_uid == os.getuid()


async def test_two_clients_see_each_others_pause_move_and_remove(server, svc, gguf_bytes):
    url_a = server.add("/a.gguf", gguf_bytes, Behaviour(rate=400_000))
    url_b = server.add("/b.gguf", gguf_bytes, Behaviour(rate=400_000))
    first, first_queue = await _attach(svc)
    second, second_queue = await _attach(svc)
    watcher = asyncio.ensure_future(_consume(second_queue))
    try:
        a = await first.enqueue(url_a)
        b = await first.enqueue(url_b, PullOptions(paused=True))
        await _until(lambda: a in second_queue.jobs and b in second_queue.jobs, what="jobs in 2nd")
        await first.pause(a)
        await _until(lambda: second_queue.jobs[a].state == JobState.PAUSED, what="pause seen")
        await second.move(b, -1)
        await asyncio.wait_for(first_queue.follow([b], done=lambda _v: first_queue.order == [b, a]), 10)
        await second.cancel(b)
        await second.remove(b)
        await asyncio.wait_for(first_queue.follow([a], done=lambda _v: b not in first_queue.jobs), 10)
        assert first_queue.order == [a] and second_queue.order == [a]
    finally:
        watcher.cancel()
        await first.close()
        await second.close()


async def _consume(queue: QueueMirror) -> None:
    async for _event in queue.events():
        pass


async def test_service_killed_mid_download_restarts_and_resumes(server, svc, store, gguf_bytes):
    rate = 1_000_000
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=rate))
    client, queue = await _attach(svc)
    job_id = await client.enqueue(url, PullOptions(name="m"))
    await asyncio.wait_for(queue.follow([job_id], done=lambda v: v.bytes_done >= 1_500_000), 20)
    pid = client.service_pid
    os.kill(pid, signal.SIGKILL)
    await _until(lambda: not _alive(pid), what="service gone")
    await client.close()
    assert svc.paths.socket.exists()  # the stale socket file a killed service leaves behind
    sent_before = server.bytes_sent("/m.gguf")

    server.behaviours["/m.gguf"].rate = None
    client, queue = await _attach(svc)  # starts a new service, which restores and resumes
    try:
        assert client.service_pid != pid
        restored = [view for view in queue.views() if view.name == "m"]
        assert restored, queue.views()
        views = await asyncio.wait_for(queue.follow([restored[0].id], done=lambda v: v.state.is_final), 30)
        assert views[restored[0].id].state == JobState.COMPLETED
    finally:
        await client.close()
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    resent = server.bytes_sent("/m.gguf") - len(gguf_bytes)
    # State is saved every 0.2 s here; what was fetched but not saved is re-sent: well under
    # a second's worth (a restart from zero would re-send 1.5 MB).
    assert resent <= rate, (resent, sent_before)
    assert server.requests("/m.gguf")[-1].headers.get("Range", "").startswith("bytes=")


async def test_sigterm_pauses_saves_and_a_restart_resumes(server, svc, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=1_000_000))
    service = subprocess.Popen(
        [sys.executable, "-m", "gguf_tui", "engine", "run"], env=svc.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        await _until(svc.paths.socket.exists, what="socket")
        client, queue = await _attach(svc)
        job_id = await client.enqueue(url, PullOptions(name="m"))
        await asyncio.wait_for(queue.follow([job_id], done=lambda v: v.bytes_done > 300_000), 20)
        seen = []
        service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(queue.follow([job_id], on_event=seen.append), 20)
        assert queue.jobs[job_id].state == JobState.PAUSED
        paused = [e for e in seen if isinstance(e, StateChanged) and e.state == JobState.PAUSED]
        assert paused[-1].reason == StateReason.SHUTDOWN
        assert await asyncio.to_thread(service.wait, 20) == 0
        await client.close()
    finally:
        if service.poll() is None:
            service.kill()
    assert not svc.paths.socket.exists()
    server.behaviours["/m.gguf"].rate = None
    client, queue = await _attach(svc)
    try:
        job = next(view for view in queue.views() if view.name == "m")
        views = await asyncio.wait_for(queue.follow([job.id], done=lambda v: v.state.is_final), 30)
        assert views[job.id].state == JobState.COMPLETED
    finally:
        await client.close()
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_user_paused_job_stays_paused_after_engine_stop(server, svc, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=500_000))
    client, queue = await _attach(svc)
    job_id = await client.enqueue(url, PullOptions(name="m"))
    await asyncio.wait_for(queue.follow([job_id], done=lambda v: v.bytes_done > 0), 20)
    await client.pause(job_id)
    await client.close()
    result = await asyncio.to_thread(svc.run_cli, "engine", "stop")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert not svc.paths.socket.exists()
    client, queue = await _attach(svc)
    try:
        assert [view.state for view in queue.views()] == [JobState.PAUSED]
        assert queue.views()[0].files[0].resume.bytes_done > 0
    finally:
        await client.close()


async def test_a_client_that_never_reads_is_dropped_and_does_not_slow_downloads(server, svc, gguf_bytes):
    data = gguf_bytes * 3
    rate = 3_000_000

    async def timed_download(path: str) -> float:
        url = server.add(path, data, Behaviour(rate=rate))
        client, queue = await _attach(svc)
        try:
            started = time.monotonic()
            job_id = await client.enqueue(url, PullOptions(name=path.strip("/")))
            views = await asyncio.wait_for(queue.follow([job_id]), 60)
            assert views[job_id].state == JobState.COMPLETED
            return time.monotonic() - started
        finally:
            await client.close()

    baseline = await timed_download("/base.gguf")
    # A client that subscribes, asks for a snapshot over and over, and never reads a byte.
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(svc.paths.socket))
    stuck.sendall(b'{"op":"hello","protocol":1,"version":"%s"}\n' % _version().encode())
    stuck.sendall(b'{"op":"call","id":0,"method":"subscribe","args":{}}\n')
    flood = asyncio.ensure_future(asyncio.to_thread(_send_calls, stuck, 5000))
    with_stuck = await timed_download("/stuck.gguf")
    await flood
    probe = await ServiceClient(svc.paths).connect()
    try:
        await _until(lambda: True)
        status = await probe.status()
    finally:
        await probe.close()
    stuck.close()
    print(f"download alone {baseline:.2f} s, with a stuck client {with_stuck:.2f} s")
    assert status["clients"] == 1, status  # only the probe: the stuck client was dropped
    assert "fell 512 frames behind: dropped" in svc.paths.log.read_text()
    assert with_stuck <= baseline * 1.10 + 0.25, (with_stuck, baseline)


def _send_calls(sock: socket.socket, count: int) -> None:
    sock.settimeout(10)
    try:
        for number in range(count):
            sock.sendall(b'{"op":"call","id":%d,"method":"snapshot","args":{}}\n' % (number + 1))
    except OSError:
        pass  # dropped: the service closed the connection


def _version() -> str:
    from gguf_tui import __version__

    return __version__


async def test_client_of_another_version_gets_one_line(svc):
    client = await connect_or_start(svc.config)
    await client.close()
    with pytest.raises(VersionMismatch) as mismatch:
        await ServiceClient(svc.paths, protocol=99, version="9.9.9").connect()
    message = str(mismatch.value)
    assert "\n" not in message and "gguf-tui engine stop" in message
    assert mismatch.value.pid == client.service_pid


async def test_symlinked_runtime_dir_is_refused(svc, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    svc.paths.runtime_dir.symlink_to(elsewhere)
    with pytest.raises(ServiceError) as refused:
        await connect_or_start(svc.config)
    assert "symlink" in str(refused.value)
    result = await asyncio.to_thread(svc.run_cli, "engine", "start")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "symlink" in result.stderr
    assert list(elsewhere.iterdir()) == []


async def test_unusable_runtime_dir_is_one_clear_line(svc, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(not_a_folder))
    result = await asyncio.to_thread(svc.run_cli, "engine", "start")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "XDG_RUNTIME_DIR" in result.stderr, result.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to drop to another uid")
async def test_another_uid_is_refused(svc):
    client = await connect_or_start(svc.config)
    await client.close()
    # With the modes as they are, another user cannot even reach the socket.
    assert await asyncio.to_thread(_connect_as_nobody, svc.paths.socket) == "EACCES"
    # Opened up by mistake, the service still checks who is calling.
    os.chmod(svc.runtime, 0o755)
    os.chmod(svc.paths.runtime_dir, 0o755)
    os.chmod(svc.paths.socket, 0o666)
    answer = await asyncio.to_thread(_connect_as_nobody, svc.paths.socket)
    assert '"kind":"permission"' in answer and "belongs to uid 0" in answer, answer
    os.chmod(svc.paths.runtime_dir, 0o700)


def _connect_as_nobody(path: Path) -> str:
    """Fork a child that drops to `nobody`, connects and says hello; what it got back."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect(str(path))
            except PermissionError:
                os.write(write_end, b"EACCES")
                os._exit(0)
            sock.sendall(b'{"op":"hello","protocol":1,"version":"x"}\n')
            os.write(write_end, sock.recv(4096))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(child, 0)
    return b"".join(chunks).decode()


async def test_idle_service_exits_by_itself(tmp_path, monkeypatch, store):
    svc = make_svc(tmp_path, monkeypatch, store, idle=1)
    try:
        client = await connect_or_start(svc.config)
        pid = client.service_pid
        await asyncio.sleep(1.5)  # attached: it stays up however long that is
        assert _alive(pid)
        await client.close()
        await _until(lambda: not _alive(pid), timeout=15, what="idle exit")
        assert not svc.paths.socket.exists()
        assert "idle for 1 s" in svc.paths.log.read_text()
    finally:
        stop_leftover(svc)


async def test_engine_status_and_start_commands(svc):
    svc.paths.runtime_dir.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(svc.paths.socket))
    stale.close()  # a socket file nobody listens on, as a killed service leaves it
    result = await asyncio.to_thread(svc.run_cli, "engine", "status")
    assert result.returncode == 1 and "no engine service" in result.stdout
    result = await asyncio.to_thread(svc.run_cli, "engine", "start")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
    result = await asyncio.to_thread(svc.run_cli, "engine", "status", "--json")
    assert result.returncode == 0 and '"running": true' in result.stdout
    result = await asyncio.to_thread(svc.run_cli, "engine", "start")
    assert "already running" in result.stdout
    result = await asyncio.to_thread(svc.run_cli, "engine", "stop")
    assert result.returncode == 0 and not svc.paths.socket.exists()


async def test_hub_ref_is_resolved_by_the_service_with_the_clients_token(svc, store):
    from gguf_tui.engine.api import CommandError, ErrorKind, HubSettings
    from tests.helpers.hubsim import HubSim, gguf_bytes

    token = "hf_clientTOKENonlyInMemory0123"
    async with HubSim(token=token) as hub:
        hub.add_repo("acme/Gated-GGUF", {"Gated-Q4_K_M.gguf": gguf_bytes(seed=4)}, gated=True)
        client, queue = await _attach(svc)  # the service itself has no token
        try:
            with pytest.raises(CommandError) as refused:
                await client.enqueue("acme/Gated-GGUF:Q4_K_M", hub=HubSettings(hub.endpoint, None))
            assert refused.value.kind == ErrorKind.REFUSED and "token" in refused.value.message
            job_id = await client.enqueue("acme/Gated-GGUF:Q4_K_M", hub=HubSettings(hub.endpoint, token))
            views = await asyncio.wait_for(queue.follow([job_id]), 30)
            assert views[job_id].state == JobState.COMPLETED, views[job_id]
        finally:
            await client.close()
        assert not any("authorization" in {k.lower() for k in r.headers} for r in hub.requests_to("cdn"))
    assert visible_files(store) == ["acme/Gated-GGUF/Gated-Q4_K_M.gguf"]
    on_disk = [svc.paths.log, *store.rglob("*")]
    for path in on_disk:
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
