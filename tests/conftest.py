"""Shared fixtures: a store with a fast test config, real GGUF bytes, and the CLI runner."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gguf_tui.cli import main
from gguf_tui.config import Config, load_config
from tests.helpers.fileserver import FileServer
from tests.helpers.ggufgen import make_gguf

REPO_ROOT = Path(__file__).resolve().parent.parent

# GGUF_TUI_TEST_SHARED=1 runs the suite with shared stores (README "A shared store on one
# box"): each test's folder is setgid and group-writable, so every store made in it is shared
# too, and the test config says `store.shared: true`.
SHARED_STORES = os.environ.get("GGUF_TUI_TEST_SHARED") == "1"
_STORE_SETTING = "store:\n  path: {store}\n  shared: true\n" if SHARED_STORES else "store: {store}\n"

TEST_CONFIG = _STORE_SETTING + """\
downloads:
  stall_timeout: 1
  connect_timeout: 5
  state_save_interval: 0.2
  retry_backoff: 0.05
  free_space_margin: 1M
  outage_timeout: 1
"""


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """No test reads the user's config, token or store, or talks to another test's (or the
    user's) engine service: each has its own runtime dir, and a service it started is stopped."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / ".local" / "state"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home" / "hf"))
    for name in ("GGUF_TUI_STORE", "GGUF_TUI_CONFIG", "HF_ENDPOINT", "HF_TOKEN", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    # A developer's proxy would route the tests' loopback servers through it.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    # Short and under /tmp: a Unix socket's path must fit in 108 bytes.
    runtime = Path(tempfile.mkdtemp(prefix="gtr", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    if SHARED_STORES:
        tmp_path.chmod(0o2775)  # a store created in here inherits the group rule
    yield
    stop_services(runtime)


def stop_services(runtime: Path) -> None:
    """Stop every engine service whose lock lies under `runtime` (SIGTERM, then SIGKILL), and
    remove the folder: no test leaves a service process behind."""
    for lock in (runtime / "gguf-tui").glob("engine-*.lock"):
        try:
            pid = int(lock.read_text().strip())
        except (OSError, ValueError):
            continue
        _stop_pid(pid)
    shutil.rmtree(runtime, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _stop_pid(pid: int) -> None:
    if not _pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + 20
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def engine_mode(request: pytest.FixtureRequest) -> str:
    """Where `config_file`'s downloads run: "local" (in the command's process, the default:
    fast and isolated) or "service" (the per-user engine service, started on demand).

    `@pytest.mark.both_modes` runs a test once in each."""
    return getattr(request, "param", "local")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_modes") and "engine_mode" in metafunc.fixturenames:
        metafunc.parametrize("engine_mode", ["local", "service"], indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_modes: run once with a local engine, once with the service")


@pytest.fixture
def config_file(tmp_path: Path, store: Path, engine_mode: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(TEST_CONFIG.format(store=store) + f"engine:\n  mode: {engine_mode}\n")
    return path


@pytest.fixture
def config(config_file: Path) -> Config:
    return load_config(config_file)


@pytest.fixture(scope="session")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 3 MiB llama GGUF written by llama.cpp's gguf package."""
    path = make_gguf(tmp_path_factory.mktemp("gguf") / "model.gguf", tensor_bytes=3 << 20)
    return path.read_bytes()


@pytest.fixture
async def server():
    async with FileServer() as running:
        yield running


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def visible_files(store: Path) -> list[str]:
    """Every file in the store outside the hidden state folder."""
    return sorted(
        str(path.relative_to(store))
        for path in store.rglob("*")
        if path.is_file() and ".gguf-tui" not in path.relative_to(store).parts
    )


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], config_file: Path):
    """Run `gguf-tui` in a thread (the test's event loop keeps serving HTTP meanwhile)."""

    async def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--config", str(config_file), *args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def cli_subprocess_env(config_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GGUF_TUI_CONFIG"] = str(config_file)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


PYTHON = sys.executable


async def start_pull(config_file: Path, *args: str) -> asyncio.subprocess.Process:
    """`gguf-tui pull ARGS` as its own process (the real program, exit path included)."""
    return await asyncio.create_subprocess_exec(
        PYTHON, "-m", "gguf_tui", "pull", *args,
        env=cli_subprocess_env(config_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
