"""A download belongs to the process whose queue holds it: others show it live, never cancel it.

The owner is a real `gguf-tui pull` process; the second process is an in-process Engine restoring
the queue records it finds, as a second dashboard does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from gguf_tui.config import load_config
from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine.job import OwnedElsewhere
from gguf_tui.engine.records import owner_lock_path
from gguf_tui.engine.resume import ResumeState
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.locks import (
    OWNER_SUFFIX,
    STALE_AFTER,
    DownloadLock,
    LockHeld,
    deletion_blocker,
    is_stale,
    process_start_id,
    read_owner,
)
from tests.conftest import sha256_of, start_pull
from tests.helpers.fileserver import Behaviour
from tests.helpers.ggufgen import make_gguf

WAIT = 20.0


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_gguf(tmp_path_factory.mktemp("src") / "m.gguf", tensor_bytes=768 << 10).read_bytes()


@pytest.fixture(scope="module")
def other_model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A second real GGUF with other bytes (only whole GGUF files are ever placed)."""
    path = tmp_path_factory.mktemp("src2") / "m2.gguf"
    return make_gguf(path, tensor_bytes=768 << 10, seed=1).read_bytes()


async def until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def saved_bytes(layout: StoreLayout, key: str) -> int:
    try:
        return ResumeState.load(layout.state_path(key)).bytes_done
    except Exception:  # noqa: BLE001 - not written yet
        return 0


@pytest.fixture
def one_at_a_time(tmp_path: Path, config_file: Path) -> Path:
    """The same store, downloading one model at a time (so a second one stays queued)."""
    path = tmp_path / "serial.yaml"
    path.write_text(config_file.read_text().replace("downloads:\n", "downloads:\n  concurrency: 1\n"))
    return path


async def test_second_process_sees_a_queued_partial_as_someone_elses_and_leaves_it(
    server, config_file, one_at_a_time, store, cli, model_bytes, other_model_bytes
):
    layout = StoreLayout(store)
    first = Behaviour(rate=150_000)
    url_a = server.add("/a.gguf", model_bytes, first)
    url_b = server.add("/b.gguf", other_model_bytes, Behaviour(rate=300_000))
    key_b = FileRequest(url=url_b, dest="b.gguf").key_hash

    # b.gguf: a partial left by an interrupted pull, as any queue restart finds it.
    earlier = await start_pull(config_file, url_b)
    await until(lambda: saved_bytes(layout, key_b) > 64 << 10, "a saved partial of b")
    earlier.send_signal(signal.SIGINT)
    await asyncio.wait_for(earlier.communicate(), WAIT)
    assert earlier.returncode == 130
    left = saved_bytes(layout, key_b)
    server.behaviours["/b.gguf"].rate = None

    # The owner: a pull of a then b, one at a time: b is queued there, its partial untouched.
    owner = await start_pull(one_at_a_time, url_a, url_b)
    await until(lambda: read_owner(owner_lock_path(layout, "b")) is not None
                and read_owner(owner_lock_path(layout, "b")).pid == owner.pid, "the owner claims b")
    await until(lambda: saved_bytes(layout, FileRequest(url=url_a, dest="a.gguf").key_hash) > 0, "a under way")

    async with Engine(load_config(config_file)) as second:
        assert await second.restore_jobs() == []  # nothing "from earlier": both are the owner's
        jobs = {job.name: job for job in second.jobs()}
        assert jobs["b"].state == JobState.ELSEWHERE and jobs["a"].state == JobState.ELSEWHERE
        assert jobs["b"].phase == "queued elsewhere"
        assert f"pid {owner.pid}" in jobs["b"].message
        await until(lambda: jobs["a"].phase == "downloading elsewhere", "a shown downloading")

        # Live progress from the owner's saved state, not numbers frozen at start.
        seen = jobs["a"].bytes_done
        await until(lambda: jobs["a"].bytes_done > seen, "a's bytes advancing here")
        assert jobs["b"].bytes_done == left

        for command in ("cancel", "pause", "resume", "retry", "remove"):
            with pytest.raises(OwnedElsewhere, match=f"only another process .*pid {owner.pid}.* can {command} it"):
                await getattr(second, command)(jobs["b"].id)
        preview = second.cancel_preview(jobs["b"].id)
        assert preview.refused and not preview.deletes_partial

        # prune --partials leaves a partial that a live process has queued.
        result = await cli("prune", "--partials", "--yes")
        assert result.code == 0, result.err
        assert layout.partial_path(key_b).exists() and saved_bytes(layout, key_b) == left

        first.rate = None
        _out, err = await asyncio.wait_for(owner.communicate(), WAIT)
        assert owner.returncode == 0, err.decode()
        await until(lambda: jobs["b"].state == JobState.COMPLETED, "b completed by its owner")
        assert f"pid {owner.pid}" in jobs["b"].message

    resumed = server.requests("/b.gguf")[-1]
    assert resumed.range_start == left  # went on from its partial, not from 0
    assert sha256_of(store / "b.gguf") == server.sha256("/b.gguf")
    assert sha256_of(store / "a.gguf") == server.sha256("/a.gguf")
    assert not list(layout.locks_dir.iterdir())


async def test_a_job_left_by_an_owner_that_exits_is_adopted(server, config_file, store, model_bytes):
    layout = StoreLayout(store)
    url = server.add("/m.gguf", model_bytes, Behaviour(rate=200_000))
    key = FileRequest(url=url, dest="m.gguf").key_hash
    owner = await start_pull(config_file, url)
    await until(lambda: saved_bytes(layout, key) > 0, "the owner under way")
    async with Engine(load_config(config_file)) as second:
        await second.restore_jobs()
        [job] = second.jobs()
        assert job.state == JobState.ELSEWHERE
        owner.send_signal(signal.SIGINT)  # pauses, saves and exits: the job is nobody's now
        await asyncio.wait_for(owner.communicate(), WAIT)
        await until(lambda: job.state == JobState.PAUSED, "adopted, paused from earlier")
        assert f"left by pid {owner.pid}" in job.message
        assert read_owner(owner_lock_path(layout, "m")).pid == os.getpid()
        server.behaviours["/m.gguf"].rate = None
        await second.resume(job.id)
        assert (await second.wait(job.id)).state == JobState.COMPLETED
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert server.requests("/m.gguf")[-1].range_start  # resumed the owner's partial


# ---- the lock rule itself ----------------------------------------------------------------------


def _owner_file(path: Path, *, pid: int, proc_start: str | None, keys: list[str], age: float = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time() - age
    path.write_text(json.dumps({
        "pid": pid, "host": socket.gethostname(), "proc_start": proc_start,
        "heartbeat": now, "started": now, "what": "m", "keys": keys, "state": "queued",
    }))


def test_a_reused_pid_does_not_keep_a_dead_owners_job(tmp_path):
    """A live pid whose process started after the lock was written is not its owner."""
    parent = os.getppid()
    layout = StoreLayout(tmp_path)
    path = layout.locks_dir / f"m{OWNER_SUFFIX}"
    _owner_file(path, pid=parent, proc_start=process_start_id(parent), keys=["k1"])
    assert not is_stale(read_owner(path), path)
    assert deletion_blocker(layout.lock_path("k1")).pid == parent  # a queued partial: kept
    assert deletion_blocker(layout.lock_path("k2")) is None  # not that job's file
    with pytest.raises(LockHeld):
        DownloadLock(path).acquire()

    _owner_file(path, pid=parent, proc_start="another-boot:12345", keys=["k1"])
    assert is_stale(read_owner(path), path)
    assert deletion_blocker(layout.lock_path("k1")) is None
    lock = DownloadLock(path)
    lock.acquire()  # taken over
    assert read_owner(path).pid == os.getpid()
    lock.release()


async def test_rm_keeps_the_files_of_a_paused_job_in_a_live_queue(server, config, store, cli, gguf_bytes):
    part1 = FileRequest(url=server.add("/p1.gguf", gguf_bytes), dest="o/r/x-00001-of-00002.gguf")
    slow = Behaviour(rate=500_000)
    part2 = FileRequest(url=server.add("/p2.gguf", gguf_bytes[::-1], slow), dest="o/r/x-00002-of-00002.gguf")
    async with Engine(config) as owner:
        job_id = await owner.enqueue(JobSpec("o/r:X", [part1, part2]))
        await until(lambda: (store / part1.dest).exists() and owner.get(job_id).bytes_done > len(gguf_bytes), "part 1 placed")
        await owner.pause(job_id)
        async with Engine(config) as second:  # a second dashboard sees it paused, and not its own
            assert await second.restore_jobs() == []
            [seen] = second.jobs()
            assert (seen.state, seen.phase) == (JobState.ELSEWHERE, "paused elsewhere")
            assert seen.bytes_done > len(gguf_bytes)  # the placed part and the saved partial
            with pytest.raises(OwnedElsewhere):
                await second.cancel(seen.id)
        refused = await cli("rm", "o/r:X", "--yes")
        assert refused.code == 1
        assert "paused in the queue of pid" in refused.err and "cancel that download first" in refused.err
        assert (store / part1.dest).exists()
    # The owner has quit: the job is from earlier, nobody's, and rm may delete the model.
    removed = await cli("rm", "o/r:X", "--yes")
    assert removed.code == 0, removed.err
    assert not (store / part1.dest).exists()


def test_a_live_owner_on_this_host_keeps_its_job_however_old_its_heartbeat(tmp_path):
    """A suspended dashboard (ctrl-z) still owns its queue; only its exit frees the jobs."""
    parent = os.getppid()
    path = StoreLayout(tmp_path).locks_dir / f"m{OWNER_SUFFIX}"
    _owner_file(path, pid=parent, proc_start=process_start_id(parent), keys=["k1"], age=STALE_AFTER + 60)
    with pytest.raises(LockHeld):
        DownloadLock(path, live_pid_holds=True).acquire()
    assert read_owner(path).pid == parent
