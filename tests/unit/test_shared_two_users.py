"""A store shared by two real users on one box (issue 15, item 3), with real `gguf-tui` runs.

Two users are created with `useradd` (root only; skipped otherwise), members of one group that
owns the store root (setgid, 2775). Each runs the real program as itself, with its own home,
runtime folder and config (`store.shared: true`, the engine service: what a user gets by
default), under the usual umask 022. User A's download is live while B looks; B sees it as A's,
cannot cancel it, resumes it after A paused and stopped, and can delete A's model only while
the group may write to its folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.hubsim import HubSim, gguf_bytes
from tests.helpers.realusers import (
    RealUser,
    Team,
    UserRuntime,
    make_team,
    missing_tools,
    remove_team,
    user_runtime,
)

pytestmark = pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")

SLOW_REPO = "acme/Slow-GGUF"
OWN_REPO = "acme/Own-GGUF"
RATE = 256 * 1024  # bytes per second: A's 3 MiB download stays live for a while

CONFIG = """\
store:
  path: {store}
  shared: true
downloads:
  stall_timeout: 5
  state_save_interval: 0.2
  retry_backoff: 0.05
  free_space_margin: 1M
engine:
  idle_exit: 120
"""


@dataclass
class Box:
    team: Team
    runtime: UserRuntime
    work: Path
    store: Path


@pytest.fixture(scope="module")
def box():
    """The group, its two users, a Python they can run, and a shared store root."""
    work = Path(tempfile.mkdtemp(prefix="gtshared", dir="/tmp"))
    work.chmod(0o755)
    team = make_team(2)
    try:
        groups = [team.gid]
        runtime = user_runtime(work, team.users[0], groups)
        store = work / "store"
        store.mkdir()
        os.chown(store, 0, team.gid)
        store.chmod(0o2775)
        for user in team.users:
            home = work / user.name
            (home / ".config" / "gguf-tui").mkdir(parents=True)
            (home / ".config" / "gguf-tui" / "config.yaml").write_text(CONFIG.format(store=store))
            run = work / f"r{user.uid}"
            run.mkdir()
            for path in [home, run, *home.rglob("*")]:
                os.chown(path, user.uid, user.gid)
            home.chmod(0o700)
            run.chmod(0o700)
        yield Box(team, runtime, work, store)
    finally:
        for user in team.users:
            _stop_services(work / f"r{user.uid}")
        remove_team(team)
        shutil.rmtree(work, ignore_errors=True)


def _stop_services(runtime: Path) -> None:
    from tests.conftest import stop_services

    stop_services(runtime)


async def gguf_tui(box: Box, user: RealUser, *args: str, hub: HubSim) -> tuple[int, str, str]:
    """Run `gguf-tui ARGS` as `user` (its own home, runtime folder, umask 022)."""
    home = box.work / user.name
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "USER": user.name,
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_RUNTIME_DIR": str(box.work / f"r{user.uid}"),
        "HF_ENDPOINT": hub.endpoint,
        **box.runtime.env,
    }
    process = await asyncio.create_subprocess_exec(
        box.runtime.python, "-m", "gguf_tui", *args,
        env=env, cwd=str(home),
        user=user.uid, group=user.gid, extra_groups=[box.team.gid], umask=0o022,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def as_user(box: Box, user: RealUser, *command: str) -> None:
    """Run a plain command (chmod) as `user`; it must succeed."""
    process = await asyncio.create_subprocess_exec(
        *command, user=user.uid, group=user.gid, extra_groups=[box.team.gid],
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def _until(check, what: str, limit: float = 60.0):
    """Poll `check` (async) until it returns something true; fail naming `what` after `limit`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.2)


def _not_shared(store: Path, gid: int) -> list[str]:
    """Every folder or file under the store that its group cannot write, or not of its group."""
    wrong = []
    for path in [store, *store.rglob("*")]:
        info = path.lstat()
        mode = info.st_mode
        if info.st_gid != gid:
            wrong.append(f"{path}: group {info.st_gid}")
        elif stat.S_ISDIR(mode) and (mode & 0o2070) != 0o2070:
            wrong.append(f"{path}: folder mode {mode & 0o7777:o}")
        elif stat.S_ISREG(mode) and (mode & 0o060) != 0o060:
            wrong.append(f"{path}: file mode {mode & 0o7777:o}")
    return wrong


async def test_two_users_share_one_store(box: Box):
    user_a, user_b = box.team.users
    slow_file = gguf_bytes(tensor_bytes=3 << 20, seed=11)
    own_file = gguf_bytes(tensor_bytes=1 << 16, seed=12)
    async with HubSim() as hub:
        hub.add_repo(SLOW_REPO, {"Slow-Q4_K_M.gguf": slow_file})
        hub.add_repo(OWN_REPO, {"Own-Q4_K_M.gguf": own_file})

        async def run(user: RealUser, *args: str) -> tuple[int, str, str]:
            return await gguf_tui(box, user, *args, hub=hub)

        # A pulls a small model of its own, then starts the slow one and leaves it running in
        # its engine service.
        code, _, err = await run(user_a, "pull", f"{OWN_REPO}:Q4_K_M")
        assert code == 0, err
        hub.cdn_rate = RATE
        code, out, err = await run(user_a, "pull", "--detach", f"{SLOW_REPO}:Q4_K_M")
        assert code == 0, err
        slow_name = f"{SLOW_REPO}:Q4_K_M"

        # B sees it as A's: on disk (no service of B's yet) and through B's own service.
        async def b_sees_a_downloading():
            code, out, _ = await run(user_b, "status")
            return out if f"downloading (user {user_a.name})" in out else None

        seen = await _until(b_sees_a_downloading, "B's status to show A's live download")
        assert "Slow-Q4_K_M.gguf" in seen
        code, out, err = await run(user_b, "cancel", slow_name)
        assert code == 1, (out, err)
        assert f"user {user_a.name}" in err and "cancel" in err
        code, out, err = await run(user_b, "status", "--json")
        jobs = {job["name"]: job for job in json.loads(out)["jobs"]}
        assert jobs[slow_name]["owner_user"] == user_a.name
        assert jobs[slow_name]["state"] == "downloading elsewhere"
        code, out, _ = await run(user_b, "status")
        assert f"{slow_name}: downloading (user {user_a.name})" in out

        # A's download was never touched: still A's, still going.
        code, out, err = await run(user_a, "status", "--json")
        mine = {job["name"]: job for job in json.loads(out)["jobs"]}
        assert mine[slow_name]["state"] in ("downloading", "queued"), mine[slow_name]
        assert mine[slow_name]["owner_user"] == ""

        # A pauses and stops its service: the partial is left with no live owner.
        code, _, err = await run(user_a, "pause", "--all")
        assert code == 0, err
        code, _, err = await run(user_a, "engine", "stop")
        assert code == 0, err
        partials = list((box.store / ".gguf-tui" / "partials").glob("*.part"))
        assert len(partials) == 1 and partials[0].stat().st_uid == user_a.uid
        done_by_a = partials[0].stat().st_size  # preallocated: the size, not the bytes done
        assert done_by_a > 0

        # B resumes it (its service adopts the download A left) and the file lands verified.
        hub.cdn_rate = None
        mark = len(hub.requests_to("cdn"))
        code, out, err = await run(user_b, "pull", slow_name)
        assert code == 0, err
        ranges = [r.headers.get("Range", "") for r in hub.requests_to("cdn")[mark:]
                  if r.method == "GET"]  # fmt: skip
        assert ranges and all(r.startswith("bytes=") and not r.startswith("bytes=0-")
                              for r in ranges), ranges  # fmt: skip
        landed = box.store / SLOW_REPO / "Slow-Q4_K_M.gguf"
        assert landed.read_bytes() == slow_file
        info = landed.stat()
        assert info.st_gid == box.team.gid and info.st_mode & stat.S_IRGRP
        code, out, err = await run(user_b, "ls", "--json")
        models = {model["name"]: model for model in json.loads(out)["models"]}
        assert models[slow_name]["state"] == "verified"

        # Everything either user created in the store is the group's, writable by it.
        assert _not_shared(box.store, box.team.gid) == []

        # B's rm of A's model: refused while the group may not write to its folder ...
        own_folder = box.store / OWN_REPO
        own_model = own_folder / "Own-Q4_K_M.gguf"
        assert own_model.stat().st_uid == user_a.uid
        assert own_folder.stat().st_uid == user_a.uid
        await as_user(box, user_a, "chmod", "g-w", str(own_folder))
        code, out, err = await run(user_b, "rm", "--yes", f"{OWN_REPO}:Q4_K_M")
        assert code == 1, (out, err)
        assert (
            f"cannot delete {OWN_REPO}:Q4_K_M: owned by user {user_a.name} and the store is not "
            "group-writable for you"
        ) in err
        assert "nothing was deleted" in err
        assert own_model.read_bytes() == own_file
        code, out, _ = await run(user_b, "ls", "--json")
        assert f"{OWN_REPO}:Q4_K_M" in {model["name"] for model in json.loads(out)["models"]}

        # ... and done once the group may write there again.
        await as_user(box, user_a, "chmod", "g+w", str(own_folder))
        code, out, err = await run(user_b, "rm", "--yes", f"{OWN_REPO}:Q4_K_M")
        assert code == 0, err
        assert not own_model.exists()
        code, out, _ = await run(user_b, "ls", "--json")
        assert f"{OWN_REPO}:Q4_K_M" not in {model["name"] for model in json.loads(out)["models"]}
        await run(user_b, "engine", "stop")


async def test_a_partial_the_group_may_not_write_is_refused_naming_its_owner(box: Box):
    """B's pull of A's paused download whose partial A made private: one line that says whose
    the file is and what would allow it, and A's bytes stay as they were."""
    user_a, user_b = box.team.users
    repo = "acme/Private-GGUF"
    body = gguf_bytes(tensor_bytes=3 << 20, seed=13)
    async with HubSim() as hub:
        hub.add_repo(repo, {"Private-Q4_K_M.gguf": body})
        name = f"{repo}:Q4_K_M"

        async def run(user: RealUser, *args: str) -> tuple[int, str, str]:
            return await gguf_tui(box, user, *args, hub=hub)

        hub.cdn_rate = RATE
        code, _, err = await run(user_a, "pull", "--detach", name)
        assert code == 0, err

        async def a_has_bytes():
            _, out, _ = await run(user_a, "status", "--json")
            jobs = {job["name"]: job for job in json.loads(out)["jobs"]}
            return jobs.get(name, {}).get("bytes_done", 0) > 0

        await _until(a_has_bytes, "A's download to receive bytes")
        code, _, err = await run(user_a, "pause", "--all")
        assert code == 0, err
        code, _, err = await run(user_a, "engine", "stop")
        assert code == 0, err
        partial = next(p for p in (box.store / ".gguf-tui" / "partials").glob("*.part")
                       if p.stat().st_uid == user_a.uid and p.stat().st_size == len(body))  # fmt: skip
        await as_user(box, user_a, "chmod", "g-w", str(partial))
        before = partial.read_bytes()

        hub.cdn_rate = None
        code, out, err = await run(user_b, "pull", name)
        assert code == 1, (out, err)
        problem = [line for line in err.splitlines() if "Permission denied" in line]
        assert problem, err
        assert f"owned by user {user_a.name}" in problem[0] and "chmod g+w" in problem[0], problem
        assert "Traceback" not in err
        assert partial.read_bytes() == before and partial.stat().st_uid == user_a.uid
        assert not (box.store / repo).exists()
        await run(user_b, "engine", "stop")
