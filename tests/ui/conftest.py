"""Helpers for Pilot tests of the dashboard: a bounded wait, and a local Hub with small repos.

Every test gets its own runtime and state dirs, so none can attach to a stray engine service,
and whatever service a test started is stopped when it ends. The dashboard runs its engine in
the test's process (`engine.mode: local`: fast and isolated) unless a test asks for the service
(`service_config`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gguf_tui.service.paths import service_paths

from tests.helpers.hubsim import HubSim
from tests.helpers.hubsim import gguf_bytes as make_gguf_bytes

WAIT = 15.0  # seconds: every wait in these tests is bounded
LOCAL_ENGINE = "engine:\n  mode: local\n"


@pytest.fixture(autouse=True)
def service_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A private XDG_RUNTIME_DIR (short, under /tmp: a socket path must fit 108 bytes) and
    XDG_STATE_HOME; on teardown, any engine service started under them is stopped."""
    runtime = Path(tempfile.mkdtemp(prefix="gtui", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield runtime
    stop_services(runtime)
    shutil.rmtree(runtime, ignore_errors=True)


def stop_services(runtime: Path) -> None:
    """SIGTERM (then SIGKILL) every service whose lock file is under `runtime`."""
    for lock in (runtime / "gguf-tui").glob("*.lock") if (runtime / "gguf-tui").is_dir() else ():
        try:
            pid = int(lock.read_text().strip())
        except (OSError, ValueError):
            continue
        _end(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _end(pid: int) -> None:
    if not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def config_file(tmp_path: Path, store: Path) -> Path:
    """The shared test config, with the engine in the test's own process."""
    from tests.conftest import TEST_CONFIG

    path = tmp_path / "config.yaml"
    path.write_text(TEST_CONFIG.format(store=store) + LOCAL_ENGINE)
    return path


@pytest.fixture
def service_config_file(tmp_path: Path, store: Path) -> Path:
    """The shared test config with the engine as a service (started on demand, per test)."""
    from tests.conftest import TEST_CONFIG

    path = tmp_path / "service.yaml"
    path.write_text(TEST_CONFIG.format(store=store) + "engine:\n  mode: service\n  idle_exit: 120\n")
    return path


def service_pid(store: Path) -> int | None:
    """The pid of the store's engine service (from its lock file), if one has started."""
    try:
        return int(service_paths(store).lock.read_text().strip())
    except (OSError, ValueError):
        return None


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = WAIT, what: str = "") -> None:
    """Let the app run until `predicate()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await pilot.pause(0.05)


@pytest.fixture
async def hub(gguf_bytes: bytes, monkeypatch: pytest.MonkeyPatch):
    """A Hub imitation with one repo (two quants + mmproj) and one repo with a markup-like file."""
    async with HubSim() as sim:
        sim.add_repo(
            "demo/Tiny-GGUF",
            {
                "Tiny-Q4_K_M.gguf": gguf_bytes,
                "Tiny-Q8_0.gguf": gguf_bytes + b"\0" * 4096,
                # A whole GGUF (a cut-off one is refused: only complete models are placed).
                "mmproj-Tiny-F16.gguf": make_gguf_bytes(tensor_bytes=(1 << 20) - 4096, arch="clip"),
            },
            downloads=120_000,
            likes=42,
        )
        sim.add_repo("demo/Other-GGUF", {"Other-Q4_K_M.gguf": gguf_bytes}, downloads=10)
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        yield sim


def rows_text(app) -> list[str]:
    """The catalog's lines as plain text."""
    return [row.label.plain for row in app.query_one("#catalog").catalog_rows]


def detail_text(app) -> str:
    return app.query_one("#detail").shown.plain


@pytest.fixture
def hub_config(config, hub):
    config.hub.endpoint = hub.endpoint
    return config


async def settle(pilot, seconds: float = 0.1) -> None:
    await pilot.pause(seconds)
    await asyncio.sleep(0)


async def enqueue(app, server, name: str) -> int:
    """Queue the test server's `/NAME.gguf` through the dashboard's engine interface."""
    from gguf_tui.engine.api import PullOptions

    return await app.engine.enqueue(server.url(f"/{name}.gguf"), PullOptions(name=name))


@pytest.fixture(params=["local", "service"])
def any_mode_config(request, config_file: Path, service_config_file: Path):
    """The test config with the engine in this process, then as a service: a test taking it
    runs once in each mode (issue 12: the dashboard behaves the same over either)."""
    from gguf_tui.config import load_config

    return load_config(config_file if request.param == "local" else service_config_file)
