"""Shared fixtures: a store with a fast test config, real GGUF bytes, and the CLI runner."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gguf_tui.cli import main
from gguf_tui.config import Config, load_config
from tests.helpers.fileserver import FileServer
from tests.helpers.ggufgen import make_gguf

REPO_ROOT = Path(__file__).resolve().parent.parent

TEST_CONFIG = """\
store: {store}
downloads:
  stall_timeout: 1
  connect_timeout: 5
  state_save_interval: 0.2
  retry_backoff: 0.05
  free_space_margin: 1M
  outage_timeout: 1
"""


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's config, token or store."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home" / "hf"))
    for name in ("GGUF_TUI_STORE", "GGUF_TUI_CONFIG", "HF_ENDPOINT", "HF_TOKEN", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def config_file(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(TEST_CONFIG.format(store=store))
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
