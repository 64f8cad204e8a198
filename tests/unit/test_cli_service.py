"""`pull`, `status` and `pause|resume|cancel` as clients of a real engine service process.

Every test has its own XDG_RUNTIME_DIR and XDG_STATE_HOME (conftest), so it starts its own
service; conftest stops it afterwards. The CLI runs as real subprocesses against a real
file server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gguf_tui.config import load_config
from gguf_tui.service.paths import service_paths
from tests.conftest import PYTHON, cli_subprocess_env, sha256_of, start_pull, visible_files
from tests.helpers.fileserver import Behaviour

pytestmark = pytest.mark.parametrize("engine_mode", ["service"], indirect=True)

SLOW = 200_000  # bytes per second per connection: a 3 MiB file takes several seconds


async def run_cli(config_file: Path, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "gguf_tui", *args,
        env=cli_subprocess_env(config_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode(), err.decode()


async def status_json(config_file: Path) -> dict:
    code, out, err = await run_cli(config_file, "status", "--json")
    assert code == 0, err
    return json.loads(out)


async def until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def job_states(status: dict) -> dict[str, str]:
    return {job["name"]: job["state"] for job in status["jobs"]}


def service_pid(config_file: Path) -> int | None:
    paths = service_paths(load_config(config_file).store)
    try:
        return int(paths.lock.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def test_pull_runs_in_the_service_verified_then_already_in_store(server, config_file, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    sha = server.sha256("/m.gguf")
    code, out, err = await run_cli(config_file, "pull", url, "--sha256", sha)
    assert code == 0, err
    assert "m: done, SHA-256 verified" in out
    pid = service_pid(config_file)
    assert pid and alive(pid) and pid not in (os.getpid(),)  # the download ran in the service
    assert sha256_of(store / "m.gguf") == sha
    code, out, err = await run_cli(config_file, "pull", url, "--json")
    assert code == 0, err
    done = [json.loads(line) for line in out.splitlines() if '"done"' in line]
    assert done[-1]["reason"] == "already_in_store" and "already in the store" in err
    assert len(server.requests("/m.gguf")) >= 1 and server.bytes_sent("/m.gguf") == len(gguf_bytes)


async def test_killed_pull_leaves_the_download_running_and_a_second_pull_attaches(
    server, config_file, store, gguf_bytes
):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    first = await start_pull(config_file, url)

    async def downloading() -> bool:
        return server.bytes_sent("/m.gguf") > 100_000

    await until(downloading, what="the first bytes")
    first.kill()  # SIGKILL: no chance to pause anything
    await first.wait()
    sent = server.bytes_sent("/m.gguf")

    async def still_downloading() -> bool:
        return server.bytes_sent("/m.gguf") > sent + 100_000

    await until(still_downloading, what="the service to keep downloading")
    status = await status_json(config_file)
    assert status["service"] is True
    [job] = status["jobs"]
    assert job["name"] == "m" and job["state"] == "downloading" and job["bytes_done"] > 0

    second = await start_pull(config_file, url, "--json")
    seen = json.loads(await asyncio.wait_for(second.stdout.readline(), 30))  # attached: events flow
    assert seen["job_id"] == job["id"]
    server.behaviours["/m.gguf"].rate = None
    out, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err
    done = [json.loads(line) for line in out.decode().splitlines() if '"event": "done"' in line]
    assert [item["id"] for item in done] == [job["id"]]  # the same job, attached to
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert visible_files(store) == ["m.gguf"]


async def test_pull_detach_prints_the_ids_and_status_reports_the_jobs(server, config_file, gguf_bytes):
    url_a = server.add("/a.gguf", gguf_bytes, Behaviour(rate=SLOW))
    url_b = server.add("/b.gguf", gguf_bytes, Behaviour(rate=SLOW))
    code, out, err = await run_cli(config_file, "pull", "--detach", "--json", url_a, url_b)
    assert code == 0, err
    queued = json.loads(out)
    assert queued["event"] == "queued" and [job["name"] for job in queued["jobs"]] == ["a", "b"]
    status = await status_json(config_file)
    by_id = {job["id"]: job for job in status["jobs"]}
    assert {job["id"] for job in queued["jobs"]} <= set(by_id)
    assert {by_id[job["id"]]["state"] for job in queued["jobs"]} <= {"queued", "downloading"}
    code, out, err = await run_cli(config_file, "pull", "--detach", url_a)
    assert code == 0 and out.split("\t")[0] == str(queued["jobs"][0]["id"])  # plain: "ID\tNAME\tSTATE"
    code, out, err = await run_cli(config_file, "status")
    assert code == 0 and "downloads in the engine service:" in out and " a: " in out


async def test_ctrl_c_pauses_only_the_jobs_this_pull_started(server, config_file, gguf_bytes):
    url_a = server.add("/a.gguf", gguf_bytes, Behaviour(rate=SLOW))
    url_b = server.add("/b.gguf", gguf_bytes, Behaviour(rate=SLOW))
    first = await start_pull(config_file, url_a)
    second = await start_pull(config_file, url_b)

    async def both_running() -> bool:
        return server.bytes_sent("/a.gguf") > 50_000 and server.bytes_sent("/b.gguf") > 50_000

    await until(both_running, what="both downloads")
    first.send_signal(signal.SIGINT)
    _out, err = await asyncio.wait_for(first.communicate(), 30)
    assert first.returncode == 130, err
    assert b"resume state saved" in err
    states = job_states(await status_json(config_file))
    assert states["a"] == "paused"
    assert states["b"] in ("downloading", "queued")
    sent_b = server.bytes_sent("/b.gguf")

    async def b_goes_on() -> bool:
        return server.bytes_sent("/b.gguf") > sent_b + 50_000

    await until(b_goes_on, what="the other pull's download to go on")
    assert second.returncode is None  # still following its own download
    second.kill()
    await second.wait()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
async def test_sighup_and_sigterm_detach_and_the_download_goes_on(server, config_file, store, gguf_bytes, signum):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    pull = await start_pull(config_file, url)

    async def downloading() -> bool:
        return server.bytes_sent("/m.gguf") > 50_000

    await until(downloading, what="the first bytes")
    pull.send_signal(signum)
    _out, err = await asyncio.wait_for(pull.communicate(), 30)
    assert pull.returncode == 130 and b"detached" in err, err
    server.behaviours["/m.gguf"].rate = None

    async def completed() -> bool:
        return job_states(await status_json(config_file)).get("m") == "completed"

    await until(completed, what="the download to complete in the service")
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_pause_resume_cancel_by_all_by_name_and_by_id(server, config_file, gguf_bytes):
    url_a = server.add("/a.gguf", gguf_bytes, Behaviour(rate=SLOW))
    url_b = server.add("/b.gguf", gguf_bytes, Behaviour(rate=SLOW))
    code, out, err = await run_cli(config_file, "pull", "--detach", "--json", url_a, url_b)
    assert code == 0, err
    ids = {job["name"]: job["id"] for job in json.loads(out)["jobs"]}

    code, out, err = await run_cli(config_file, "pause", "--all", "--json")
    assert code == 0, err
    assert sorted(job["id"] for job in json.loads(out)["jobs"]) == sorted(ids.values())
    assert job_states(await status_json(config_file)) == {"a": "paused", "b": "paused"}

    code, out, err = await run_cli(config_file, "resume", "a", str(ids["b"]))
    assert code == 0, err
    assert f"resumed {ids['a']} a" in out
    assert set(job_states(await status_json(config_file)).values()) <= {"queued", "downloading"}

    code, out, err = await run_cli(config_file, "cancel", "--all", "--json")
    assert code == 0, err
    assert len(json.loads(out)["jobs"]) == 2
    assert job_states(await status_json(config_file)) == {"a": "cancelled", "b": "cancelled"}

    code, out, err = await run_cli(config_file, "pause", "nosuch")
    assert code == 1 and err.count("\n") == 1 and "nosuch: no such download" in err
    code, _out, err = await run_cli(config_file, "pause")
    assert code == 2 and "--all" in err
    code, _out, err = await run_cli(config_file, "--local", "pause", "--all")
    assert code == 2


async def test_pause_without_a_service_starts_none(config_file, store):
    store.mkdir()  # `status` of a named store that does not exist is a usage error
    code, out, err = await run_cli(config_file, "pause", "--all")
    assert code == 0 and "no download to pause" in out, err
    code, _out, err = await run_cli(config_file, "pause", "7")
    assert code == 1 and "no engine service is running" in err
    code, out, err = await run_cli(config_file, "status", "--json")
    assert code == 0 and json.loads(out)["service"] is False
    assert service_pid(config_file) is None


async def test_status_shows_partials_from_disk_without_starting_a_service(server, config_file, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    code, _out, err = await run_cli(config_file, "pull", "--detach", url)
    assert code == 0, err

    async def some_bytes() -> bool:
        return server.bytes_sent("/m.gguf") > 100_000

    await until(some_bytes, what="the first bytes")
    code, _out, err = await run_cli(config_file, "engine", "stop")
    assert code == 0, err
    status = await status_json(config_file)
    assert status["service"] is False and status["jobs"] == []
    [row] = status["partials"]
    assert row["dest"] == "m.gguf" and row["bytes_done"] > 0
    assert service_pid(config_file) is None or not alive(service_pid(config_file))


async def test_local_mode_needs_no_service(server, config_file, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    code, out, err = await run_cli(config_file, "--local", "pull", url, "--sha256", server.sha256("/m.gguf"))
    assert code == 0 and "done, SHA-256 verified" in out, err
    assert service_pid(config_file) is None
    code, _out, err = await run_cli(config_file, "--local", "pull", "--detach", url)
    assert code == 2 and err.count("\n") == 1 and "--detach" in err


# ---- a service that cannot be used ------------------------------------------------------------


async def test_unstartable_service_is_one_line_and_exit_1(server, config_file, tmp_path, monkeypatch, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(not_a_folder))
    code, out, err = await run_cli(config_file, "pull", url)
    assert code == 1 and err.count("\n") == 1, err
    assert "XDG_RUNTIME_DIR" in err and "--local" in err and "Traceback" not in err
    code, out, err = await run_cli(config_file, "pull", "--json", url)
    assert code == 1 and json.loads(out)["event"] == "failed"


async def test_stale_socket_is_replaced_by_a_new_service(server, config_file, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    paths = service_paths(load_config(config_file).store)
    paths.runtime_dir.mkdir(mode=0o700, parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(paths.socket))
    stale.close()  # a socket file nobody listens on, as a killed service leaves it
    code, out, err = await run_cli(config_file, "pull", url)
    assert code == 0 and "m: done" in out, err
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_a_service_of_another_version_is_one_line_and_exit_1(server, config_file, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    other = (
        "import sys, gguf_tui\n"
        "gguf_tui.__version__ = '0.0.0-other'\n"
        "from gguf_tui.cli import main\n"
        "sys.exit(main(['engine', 'run']))\n"
    )
    service = subprocess.Popen(
        [sys.executable, "-c", other], env=cli_subprocess_env(config_file),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        paths = service_paths(load_config(config_file).store)

        async def listening() -> bool:
            return paths.socket.exists()

        await until(listening, what="the other version's service")
        code, out, err = await run_cli(config_file, "pull", url)
        assert code == 1 and err.count("\n") == 1, err
        assert "gguf-tui engine stop" in err
        code, out, err = await run_cli(config_file, "status")
        assert code == 1 and "gguf-tui engine stop" in err
        code, out, err = await run_cli(config_file, "status", "--json")
        assert code == 1 and "gguf-tui engine stop" in err and json.loads(out)["service"] is False
        assert service.poll() is None  # nothing was lost: the other service still runs
        assert not (store / "m.gguf").exists()
    finally:
        service.terminate()
        service.wait(30)


async def test_service_killed_under_a_pull_is_one_line_and_exit_1(server, config_file, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    pull = await start_pull(config_file, url)

    async def downloading() -> bool:
        return server.bytes_sent("/m.gguf") > 50_000

    await until(downloading, what="the first bytes")
    os.kill(service_pid(config_file), signal.SIGKILL)
    _out, err = await asyncio.wait_for(pull.communicate(), 30)
    assert pull.returncode == 1, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "run the same pull again to resume" in lines[0], lines


async def test_ctrl_c_on_a_pull_that_attached_leaves_the_job_running(server, config_file, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=SLOW))
    first = await start_pull(config_file, url, "--json")
    await asyncio.wait_for(first.stdout.readline(), 30)  # the job is queued
    second = await start_pull(config_file, url, "--json")
    await asyncio.wait_for(second.stdout.readline(), 30)  # attached: its events flow
    second.send_signal(signal.SIGINT)
    _out, err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 130, err
    assert b"the downloads go on for the client that started them" in err
    sent = server.bytes_sent("/m.gguf")

    async def goes_on() -> bool:
        return server.bytes_sent("/m.gguf") > sent + 50_000

    await until(goes_on, what="the first pull's download to go on")
    assert job_states(await status_json(config_file)) == {"m": "downloading"}
    server.behaviours["/m.gguf"].rate = None
    await asyncio.wait_for(first.communicate(), 60)
    assert first.returncode == 0
