"""Several processes sharing one store: one owner per download, stale locks taken over."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from gguf_tui.engine.resume import ResumeState
from gguf_tui.engine.spec import FileRequest
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.locks import STALE_AFTER, DownloadLock, LockHeld, read_owner
from tests.conftest import sha256_of, start_pull, visible_files
from tests.helpers.fileserver import Behaviour
from tests.helpers.ggufgen import make_gguf


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_gguf(tmp_path_factory.mktemp("src") / "m.gguf", tensor_bytes=768 << 10).read_bytes()


async def _until(predicate, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_two_pulls_at_once_one_downloads_the_other_waits(
    server, config_file, store, model_bytes
):
    url = server.add("/m.gguf", model_bytes, Behaviour(rate=400_000))
    processes = [await start_pull(config_file, url) for _ in range(2)]
    waiting = asyncio.Event()
    requests_when_waiting: list[int] = []

    async def watch(process: asyncio.subprocess.Process) -> str:
        lines = []
        async for raw in process.stderr:  # type: ignore[union-attr]
            line = raw.decode()
            lines.append(line)
            if "downloading elsewhere" in line and not waiting.is_set():
                requests_when_waiting.append(len(server.requests("/m.gguf")))
                waiting.set()
        await process.wait()
        return "".join(lines)

    watchers = [asyncio.create_task(watch(p)) for p in processes]
    await asyncio.wait_for(waiting.wait(), 20)
    # While one process reports the other's download, only the owner is fetching the file.
    for _ in range(10):
        assert len(server.requests("/m.gguf")) <= 1
        await asyncio.sleep(0.05)
    assert requests_when_waiting[0] <= 1
    server.behaviours["/m.gguf"].rate = None
    errs = await asyncio.wait_for(asyncio.gather(*watchers), 30)
    assert [p.returncode for p in processes] == [0, 0], errs
    assert sum("downloading elsewhere" in err for err in errs) == 1
    waiter = next(err for err in errs if "downloading elsewhere" in err)
    assert "pid " in waiter and "alive" in waiter  # says who owns it
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert visible_files(store) == ["m.gguf"]
    layout = StoreLayout(store)
    assert not list(layout.locks_dir.iterdir())
    assert not list(layout.partials_dir.iterdir())


async def test_lock_left_by_a_killed_pull_is_taken_over(
    server, config_file, store, cli, model_bytes
):
    url = server.add("/m.gguf", model_bytes, Behaviour(rate=300_000))
    key = FileRequest(url=url, dest="m.gguf").key_hash
    layout = StoreLayout(store)
    process = await start_pull(config_file, url)

    def saved_some() -> bool:
        try:
            return ResumeState.load(layout.state_path(key)).bytes_done > 64 << 10
        except Exception:  # noqa: BLE001 - not written yet
            return False

    await _until(saved_some)
    process.kill()
    await process.wait()
    owner = read_owner(layout.lock_path(key))
    assert owner is not None and owner.pid == process.pid  # the dead owner's lock is still there

    server.behaviours["/m.gguf"].rate = None
    before = len(server.requests("/m.gguf"))
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "downloading elsewhere" not in result.err
    resumed = server.requests("/m.gguf")[before]
    assert resumed.range_start and resumed.range_start > 0  # took over the partial too
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert not layout.lock_path(key).exists()


def _lock_file(path: Path, *, host: str, heartbeat: float, pid: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(
        {"pid": pid, "host": host, "heartbeat": heartbeat, "started": heartbeat, "what": "m.gguf"}
    ))


def test_lock_of_another_host_is_respected_until_its_heartbeat_stops(tmp_path):
    path = tmp_path / "locks" / "k.lock"
    _lock_file(path, host="other-gpu-box", heartbeat=time.time())
    with pytest.raises(LockHeld) as held:
        DownloadLock(path, what="m.gguf").acquire()
    assert "downloading elsewhere" in str(held.value) and "other-gpu-box" in str(held.value)

    _lock_file(path, host="other-gpu-box", heartbeat=time.time() - STALE_AFTER - 5)
    lock = DownloadLock(path, what="m.gguf")
    lock.acquire()
    owner = read_owner(path)
    assert owner is not None and owner.pid == os.getpid() and owner.what == "m.gguf"
    lock.release()
    assert not path.exists()
