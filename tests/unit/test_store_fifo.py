"""FIFOs and other non-regular files in the store are listed as problems, never opened (10.5).

Reading a FIFO blocks until a writer comes, so each command runs as its own process with a
timeout: a test fails (instead of hanging the suite) if the program opens one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gguf_tui.fsutil import (
    NotRegularFileError,
    open_regular,
    read_regular_bytes,
    read_regular_text,
)
from gguf_tui.gguf import GGUFError, read_gguf
from gguf_tui.store.fileio import cached_header, is_complete_gguf, read_header, sha256_file
from gguf_tui.store.layout import StoreLayout
from tests.conftest import cli_subprocess_env
from tests.helpers.ggufgen import add_managed_model, make_gguf

HANG_TIMEOUT = 30  # seconds; each command takes well under 2


def run_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "gguf_tui", *args],
            env=cli_subprocess_env(config_file),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=HANG_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"gguf-tui {' '.join(args)} hung (a FIFO was opened for reading)")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "pipe.gguf"
    path.parent.mkdir()
    os.mkfifo(path)
    return path


# --- the helper -----------------------------------------------------------------------------


def test_open_regular_refuses_a_fifo_without_blocking(fifo: Path, tmp_path: Path) -> None:
    with pytest.raises(NotRegularFileError) as caught:
        open_regular(fifo)
    assert caught.value.strerror == "not a regular file (a FIFO)"
    link = tmp_path / "link.gguf"
    link.symlink_to(fifo)
    with pytest.raises(NotRegularFileError, match="a FIFO"):
        open_regular(link)
    with pytest.raises(NotRegularFileError, match="a directory"):
        open_regular(tmp_path)


def test_open_regular_follows_links_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "real.gguf"
    target.write_bytes(b"GGUF")
    link = tmp_path / "link.gguf"
    link.symlink_to(target)
    fd = open_regular(link)
    try:
        assert os.get_blocking(fd)  # a normal fd once the type is known
        assert os.read(fd, 4) == b"GGUF"
    finally:
        os.close(fd)
    with pytest.raises(NotRegularFileError, match="a symlink"):
        open_regular(link, follow_symlinks=False)
    fd = open_regular(target, noatime=True, follow_symlinks=False)
    os.close(fd)


def test_open_regular_refuses_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "sock.gguf"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(NotRegularFileError, match="a socket"):
            open_regular(path)
    finally:
        server.close()


def test_state_files_are_read_only_when_regular_and_small(fifo: Path, tmp_path: Path) -> None:
    with pytest.raises(NotRegularFileError):
        read_regular_text(fifo)
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(64 << 20)  # sparse: no disk, but reading it whole would take 64 MB
    with pytest.raises(OSError, match="too large"):
        read_regular_bytes(big)
    small = tmp_path / "small.json"
    small.write_text('{"a": 1}')
    assert read_regular_text(small) == '{"a": 1}'


def test_every_store_reader_refuses_a_fifo(fifo: Path) -> None:
    for read in (read_gguf, read_header):
        with pytest.raises(GGUFError, match=r"cannot read: not a regular file \(a FIFO\)"):
            read(fifo)
    assert isinstance(cached_header(fifo), GGUFError)
    assert not is_complete_gguf(fifo)
    with pytest.raises(NotRegularFileError):
        sha256_file(fifo)


# --- the commands, as their own processes ---------------------------------------------------


def test_ls_info_verify_with_a_link_to_a_fifo(config_file: Path, store: Path, fifo: Path) -> None:
    store.mkdir(parents=True)
    (store / "x.gguf").symlink_to(fifo)
    os.mkfifo(store / "y.gguf")  # a FIFO named like a model, right in the store

    listed = run_cli(config_file, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    models = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
    for name in ("x", "y"):
        assert models[name]["state"] == "not a file"
        assert models[name]["error"] == f"{name}.gguf: not a regular file (a FIFO)"
        assert models[name]["files"][0]["problem"] == models[name]["error"]
    text = run_cli(config_file, "ls")
    assert text.returncode == 0 and "not a file" in text.stdout

    info = run_cli(config_file, "info", "x")
    assert info.returncode == 0, info.stderr
    assert "not a regular file (a FIFO)" in info.stdout

    verify = run_cli(config_file, "verify", "x")
    assert verify.returncode == 1
    assert "Traceback" not in verify.stderr


def test_managed_file_replaced_by_a_fifo(config_file: Path, store: Path, tmp_path: Path) -> None:
    source = make_gguf(tmp_path / "src" / "Tiny-Q8_0.gguf", tensor_bytes=4096)
    add_managed_model(store, "tiny", {"Tiny-Q8_0.gguf": source})
    (store / "Tiny-Q8_0.gguf").unlink()
    os.mkfifo(store / "Tiny-Q8_0.gguf")

    listed = run_cli(config_file, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    [model] = json.loads(listed.stdout)["models"]
    assert model["managed"] and model["state"] == "not a file"
    assert "not a regular file (a FIFO)" in model["error"]
    assert json.loads(listed.stdout)["total_size"] == 0

    info = run_cli(config_file, "info", "tiny")
    assert info.returncode == 0, info.stderr
    assert "not a regular file (a FIFO)" in info.stdout

    verify = run_cli(config_file, "verify", "tiny")
    assert verify.returncode == 1
    assert "not a regular file (a FIFO)" in verify.stdout + verify.stderr


def test_fifos_among_the_state_files(config_file: Path, store: Path, tmp_path: Path) -> None:
    layout = StoreLayout(store)
    layout.ensure()
    layout.jobs_dir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(layout.manifests_dir / "trap.json")
    os.mkfifo(layout.jobs_dir / "trap.json")
    os.mkfifo(layout.partials_dir / "0123abcd.state.json")
    source = make_gguf(tmp_path / "src" / "Real-Q8_0.gguf", tensor_bytes=4096)
    add_managed_model(store, "real", {"Real-Q8_0.gguf": source})

    listed = run_cli(config_file, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    snapshot = json.loads(listed.stdout)
    assert [m["name"] for m in snapshot["models"]] == ["real"]
    assert any("trap.json" in p["manifest"] for p in snapshot["problems"])
    for command in (["status"], ["verify", "real"], ["info", "real"]):
        result = run_cli(config_file, *command)
        assert "Traceback" not in result.stderr, result.stderr


def test_import_of_a_fifo_fails_cleanly(config_file: Path, store: Path, fifo: Path) -> None:
    result = run_cli(config_file, "import", str(fifo))
    assert result.returncode == 1, result.stderr
    assert "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr
