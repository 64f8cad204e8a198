"""Interruptions: SIGINT and SIGKILL of `pull`, pause / resume / cancel, a full disk."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine.resume import ResumeState
from gguf_tui.store.layout import StoreLayout
from tests.conftest import sha256_of, start_pull, visible_files
from tests.helpers.fileserver import Behaviour


async def _wait_for_bytes(state_path: Path, minimum: int, timeout: float = 15.0) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            done = ResumeState.load(state_path).bytes_done
            if done >= minimum:
                return done
        except Exception:  # noqa: BLE001 - not written yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"no progress saved in {state_path}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
async def test_killed_pull_resumes_from_saved_state(server, config_file, store, gguf_bytes, sig):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=1_000_000))
    key = FileRequest(url=url, dest="m.gguf").key_hash
    state_path = StoreLayout(store).state_path(key)
    process = await start_pull(config_file, url)
    await _wait_for_bytes(state_path, 256 * 1024)
    process.send_signal(sig)
    _out, err = await asyncio.wait_for(process.communicate(), 15)
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert b"resume state saved" in err
    else:
        assert process.returncode == -signal.SIGKILL
    saved = ResumeState.load(state_path).bytes_done
    assert 0 < saved < len(gguf_bytes)
    assert visible_files(store) == []

    server.behaviours["/m.gguf"].rate = None
    requests_before = len(server.requests("/m.gguf"))
    second = await start_pull(config_file, url)
    out, err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 0, err.decode()
    first_new = server.requests("/m.gguf")[requests_before]
    assert first_new.headers["Range"] == f"bytes={saved}-"
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert visible_files(store) == ["m.gguf"]


async def test_pause_resume_continues_from_same_byte(server, config, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=2_000_000))
    spec = JobSpec("m", [FileRequest(url=url, dest="m.gguf")])
    async with Engine(config) as engine:
        events = engine.subscribe()
        job_id = await engine.enqueue(spec)
        state_path = engine.layout.state_path(spec.files[0].key_hash)
        await _wait_for_bytes(state_path, 256 * 1024)
        await engine.pause(job_id)
        assert engine.get(job_id).state == JobState.PAUSED
        paused_at = ResumeState.load(state_path).bytes_done
        assert paused_at > 0
        server.behaviours["/m.gguf"].rate = None
        await engine.resume(job_id)
        job = await engine.wait(job_id)
        assert job.state == JobState.COMPLETED
        resumed = server.requests("/m.gguf")[-1]
        assert resumed.headers["Range"] == f"bytes={paused_at}-"
        seen = []
        while not events.queue.empty():
            seen.append(events.queue.get_nowait())
        states = [e.state for e in seen if hasattr(e, "state")]
        assert JobState.PAUSED in states and states[-1] == JobState.COMPLETED
        assert any(type(e).__name__ == "Progress" for e in seen)
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_cancel_deletes_partial_and_state(server, config, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=1_000_000))
    spec = JobSpec("m", [FileRequest(url=url, dest="m.gguf")])
    async with Engine(config) as engine:
        job_id = await engine.enqueue(spec)
        layout = engine.layout
        key = spec.files[0].key_hash
        await _wait_for_bytes(layout.state_path(key), 128 * 1024)
        await engine.cancel(job_id)
        assert engine.get(job_id).state == JobState.CANCELLED
        assert not layout.partial_path(key).exists()
        assert not layout.state_path(key).exists()
        assert not list((layout.hidden / "jobs").glob("*.json"))
    assert visible_files(store) == []


async def test_move_and_concurrency(server, config, gguf_bytes):
    config.downloads.concurrency = 1
    urls = [server.add(f"/m{i}.gguf", gguf_bytes, Behaviour(rate=4_000_000)) for i in range(3)]
    async with Engine(config) as engine:
        ids = [
            await engine.enqueue(JobSpec(f"m{i}", [FileRequest(url=u, dest=f"m{i}.gguf")]))
            for i, u in enumerate(urls)
        ]
        await engine.move(ids[2], -1)
        assert [job.id for job in engine.jobs()] == [ids[0], ids[2], ids[1]]
        assert engine.get(ids[1]).state == JobState.QUEUED
        await engine.wait(ids[0])
        await engine.wait(ids[2])
        await engine.wait(ids[1])
        started = [record.path for record in server.log]
        assert started.index("/m2.gguf") < started.index("/m1.gguf")
        assert all(engine.get(i).state == JobState.COMPLETED for i in ids)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 4 MiB tmpfs: writes past it fail with ENOSPC."""
    mount_point = tmp_path / "smallfs"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_disk_full_pauses_and_resumes_after_space_is_freed(
    server, tmp_path, small_fs, gguf_bytes
):
    # 6 MiB, sent chunked without range support: the size is unknown up front, so no
    # preflight or preallocation can catch it; only the real write hits ENOSPC.
    data = gguf_bytes + gguf_bytes[: (6 << 20) - len(gguf_bytes)]
    behaviour = Behaviour(chunked=True, rate=6_000_000, ignore_range=True)
    url = server.add("/big.gguf", data, behaviour)
    config_file = tmp_path / "small.yaml"
    config_file.write_text(
        f"store: {small_fs}\ndownloads:\n  free_space_margin: 0\n  retry_backoff: 0.05\n"
    )
    process = await start_pull(config_file, url)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert b"disk full" in err and b"partial is kept" in err
    layout = StoreLayout(small_fs)
    key = FileRequest(url=url, dest="big.gguf").key_hash
    saved = ResumeState.load(layout.state_path(key))
    assert saved.bytes_done > 0
    with open(layout.partial_path(key), "rb") as partial:
        assert partial.read(saved.bytes_done) == data[: saved.bytes_done]  # nothing lost
    assert visible_files(small_fs) == []

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)
    behaviour.rate, behaviour.ignore_range = None, False
    process = await start_pull(config_file, url)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert server.requests("/big.gguf")[-1].headers["Range"].startswith(f"bytes={saved.bytes_done}-")
    assert sha256_of(small_fs / "big.gguf") == server.sha256("/big.gguf")


async def test_preflight_refuses_download_larger_than_free_space(server, cli, store, gguf_bytes):
    from gguf_tui.engine.placement import free_space

    url = server.add("/m.gguf", gguf_bytes)
    store.mkdir(parents=True)
    huge = free_space(store) * 2
    spec = JobSpec("m", [FileRequest(url=url, dest="m.gguf", expected_size=huge)])
    from gguf_tui.config import load_config

    config = load_config(None, store=store)
    async with Engine(config) as engine:
        job = await engine.wait(await engine.enqueue(spec))
    assert job.state == JobState.PAUSED
    assert "not enough disk space" in job.message
    assert server.requests("/m.gguf") == []
    assert json.dumps(job.message)


@pytest.mark.both_modes
async def test_program_exit_loses_no_output_or_data(server, config_file, store, gguf_bytes):
    """`gguf-tui` leaves with os._exit after flushing: every --json line arrives whole, the
    placed file and manifest are complete, and the exit code is the command's."""
    url = server.add("/m.gguf", gguf_bytes)
    process = await start_pull(config_file, url, "--json", "--sha256", server.sha256("/m.gguf"))
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert events and out.endswith(b"\n")
    assert events[-1]["event"] == "done" and events[-1]["files"] == [str(store / "m.gguf")]
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    manifests = list((store / ".gguf-tui" / "manifests").glob("*.json"))
    assert len(manifests) == 1
    assert server.sha256("/m.gguf") in manifests[0].read_text()

    failing = await start_pull(config_file, server.url("/missing.gguf"))
    _out, err = await asyncio.wait_for(failing.communicate(), 30)
    assert failing.returncode == 1
    assert b"404" in err and err.endswith(b"\n")
