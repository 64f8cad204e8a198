"""System programs the tests need (squid, nginx, ...): found, installed once, or the test skips.

A clean Debian machine has none of them; the project's own tests install what they use, so CI
and a fresh developer box run the same tests. Installing needs root; without it a missing
program skips the test with a reason instead of failing it.

Debian's postinst may start the package's own service (a system squid on :3128, nginx on :80);
the tests never use those: every server a test runs has its own config, port, pid file, logs
and cache under a temporary folder, so a system instance neither helps nor gets in the way.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Program folders that a root PATH has but a user's may lack (squid and nginx live in sbin).
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_LOCK_PATH = Path("/tmp/gguf-tui-tests-apt.lock")
_tried: dict[str, str | None] = {}  # package -> why installing failed (None: it worked)
_apt_updated = False


def find_command(cmd: str) -> str | None:
    """The full path of `cmd` on PATH or in the sbin folders, or None."""
    found = shutil.which(cmd)
    if found:
        return found
    for folder in _SBIN:
        candidate = Path(folder) / cmd
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_command(cmd: str, package: str) -> str:
    """The path of `cmd`; installs Debian `package` once when it is missing and we are root,
    else `pytest.skip` with the reason."""
    found = find_command(cmd)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip(f"{cmd} is not installed (Debian package {package}) and installing it needs root")
    if shutil.which("apt-get") is None:
        pytest.skip(f"{cmd} is not installed and this machine has no apt-get to install {package}")
    if package not in _tried:
        _tried[package] = _apt_install(package)
    found = find_command(cmd)
    if found:
        return found
    why = _tried[package] or f"the package did not provide {cmd}"
    pytest.skip(f"{cmd} is not available: installing {package} failed ({why})")


def _apt_install(package: str) -> str | None:
    """`apt-get install` under a lock shared by parallel test runs; None or why it failed."""
    global _apt_updated
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # apt's own lock makes a second runner fail at once; wait for it instead.
    wait = ["-o", "DPkg::Lock::Timeout=600"]
    with open(_LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        install = ["apt-get", *wait, "install", "-y", "--no-install-recommends", package]
        result = _run(install, env)
        if result.returncode != 0 and not _apt_updated:
            _apt_updated = True  # an old or empty package list: refresh it once, then retry
            _run(["apt-get", *wait, "update"], env)
            result = _run(install, env)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1][:200] if lines else f"exit status {result.returncode}"


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900
    )
