"""Real Unix users for tests of a store shared by several users on one box.

`make_team` creates a group and users in it with `groupadd`/`useradd` (root only; the caller
skips otherwise) and removes them again. `user_runtime` finds a Python those users can run
`gguf-tui` with: the test's own interpreter when they can reach it, else a copy of it (the
interpreter, its standard library, and whichever of the site-packages and the checkout they
cannot reach) in a folder they can read. A checkout or an interpreter under root's 0700 home
(a CI clone, pyenv) is the usual reason: the users cannot traverse `/root`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RealUser:
    name: str
    uid: int
    gid: int  # the user's own (private) group


@dataclass
class Team:
    group: str
    gid: int
    users: list[RealUser] = field(default_factory=list)


def missing_tools() -> str | None:
    """Why real users cannot be made here, or None."""
    if os.geteuid() != 0:
        return "creating real users needs root (useradd)"
    for tool in ("useradd", "groupadd", "userdel", "groupdel"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (package passwd)"
    return None


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


def make_team(count: int = 2) -> Team:
    """A new group and `count` users with private primary groups who are members of it.

    Names are unique per call (a leftover from a killed run never collides)."""
    import grp
    import pwd

    token = secrets.token_hex(3)
    team = Team(group=f"gtteam{token}", gid=-1)
    _run("groupadd", team.group)
    team.gid = grp.getgrnam(team.group).gr_gid
    for index in range(count):
        name = f"gt{chr(ord('a') + index)}{token}"
        _run("useradd", "--no-create-home", "--user-group", "--groups", team.group,
             "--shell", "/usr/sbin/nologin", name)  # fmt: skip
        entry = pwd.getpwnam(name)
        team.users.append(RealUser(name, entry.pw_uid, entry.pw_gid))
    return team


def remove_team(team: Team) -> None:
    for user in team.users:
        subprocess.run(["userdel", user.name], capture_output=True)
    subprocess.run(["groupdel", team.group], capture_output=True)


# ---- a Python the users can run ----------------------------------------------------------------


def reachable_by_others(path: Path) -> bool:
    """Whether a user with no special rights can reach `path`: every folder on the way is
    world-searchable and the path itself world-readable."""
    path = Path(os.path.realpath(path))
    for folder in [*reversed(path.parents)]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)  # same filesystem: instant, and the file's own mode (o+r) counts
    except OSError:
        shutil.copy2(source, dest)


def _copy_tree(source: Path, dest: Path, ignore=None) -> Path:
    shutil.copytree(source, dest, symlinks=True, ignore=ignore, copy_function=_link_or_copy)
    return dest


@dataclass
class UserRuntime:
    python: str
    env: dict[str, str]  # PYTHONPATH and friends, to add to each user's environment
    how: str  # what was done to make it reachable, for the test's report


def user_runtime(work: Path, probe_user: RealUser, probe_groups: list[int]) -> UserRuntime:
    """A Python and environment with which `probe_user` can import gguf_tui and its deps."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    direct = UserRuntime(sys.executable, {"PYTHONPATH": str(REPO_ROOT), "PYTHONNOUSERSITE": "1"},
                         "the test's own interpreter")  # fmt: skip
    if _probe(direct, probe_user, probe_groups) is None:
        return direct
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    copy = work / "py"
    (copy / "bin").mkdir(parents=True)
    executable = Path(os.path.realpath(sys.executable))
    shutil.copy2(executable, copy / "bin" / version)
    (copy / "lib").mkdir()
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    for found in (base / "lib").glob(f"{library}*") if library.endswith(".so") else ():
        shutil.copy2(found, copy / "lib" / found.name)
    skip = shutil.ignore_patterns("site-packages", "test", "idlelib", "tkinter", "turtledemo",
                                  "ensurepip", "config-*")  # fmt: skip
    _copy_tree(base / "lib" / version, copy / "lib" / version, skip)
    paths = [REPO_ROOT, purelib]
    how = [f"copied the interpreter from {base}"]
    if not reachable_by_others(REPO_ROOT):
        paths[0] = work / "repo"
        paths[0].mkdir()
        for name in ("gguf_tui", "tests"):
            _copy_tree(REPO_ROOT / name, paths[0] / name, shutil.ignore_patterns("__pycache__"))
        how.append(f"copied the checkout {REPO_ROOT}")
    if not reachable_by_others(purelib):
        paths[1] = _copy_tree(purelib, work / "site-packages")
        how.append(f"copied {purelib}")
    for folder in [work, *work.rglob("*")]:
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o755)
    runtime = UserRuntime(
        str(copy / "bin" / version),
        {
            "PYTHONPATH": os.pathsep.join(str(path) for path in paths),
            "PYTHONNOUSERSITE": "1",
            "LD_LIBRARY_PATH": str(copy / "lib"),  # searched before the binary's RUNPATH
        },
        "; ".join(how),
    )
    problem = _probe(runtime, probe_user, probe_groups)
    if problem is not None:
        raise RuntimeError(f"test users cannot run gguf-tui even from a copy: {problem}")
    return runtime


def _probe(runtime: UserRuntime, user: RealUser, groups: list[int]) -> str | None:
    """None if `user` can import gguf_tui with this runtime, else the error it got."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/", **runtime.env}
    try:
        done = subprocess.run(
            [runtime.python, "-c", "import gguf_tui.cli, aiohttp, yaml"],
            user=user.uid, group=user.gid, extra_groups=groups, env=env, cwd="/",
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except OSError as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
