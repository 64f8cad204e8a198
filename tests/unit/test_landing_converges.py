"""A kill or a failure between placing a file and writing its manifest never leaves a dead end
(issue 10.6): the next pull finishes the job, temp files are cleaned, a full disk pauses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from gguf_tui.engine.api import PullOptions
from gguf_tui.engine.resolve import url_spec as resolve_url_spec
from gguf_tui.engine.records import record_path, save_record
from gguf_tui.engine.resume import ResumeState
from gguf_tui.store.layout import StoreLayout
from tests.conftest import sha256_of, start_pull, visible_files


def url_spec(url: str, *, sha256: str | None, name: str | None):
    """The job `pull URL [--sha256 HEX] [--name NAME]` enqueues."""
    return resolve_url_spec(url, PullOptions(sha256=sha256, name=name))


async def _pull(config_file: Path, *args: str) -> tuple[int, str, str]:
    process = await start_pull(config_file, *args)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def _manifests(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (store / ".gguf-tui" / "manifests").glob("*.json")]


def _hidden_files(store: Path, folder: str) -> list[str]:
    path = store / ".gguf-tui" / folder
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def _stale_temp(folder: Path, name: str) -> Path:
    """A manifest temp file as a process killed in the middle of `write_json_atomic` leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{name}.424242.tmp"
    temp.write_text('{"format": 1, "na')
    old = time.time() - 3600
    os.utime(temp, (old, old))
    return temp


async def test_placed_file_without_manifest_is_recognised(
    server, cli, config_file, store, gguf_bytes
):
    """The state an older version left when killed after the rename, before the manifest: the
    file in place, its queue record, no manifest, a half-written temp manifest."""
    url = server.add("/m.gguf", gguf_bytes)
    sha = server.sha256("/m.gguf")
    layout = StoreLayout(store)
    layout.ensure()
    (store / "m.gguf").write_bytes(gguf_bytes)
    spec = url_spec(url, sha256=sha, name=None)
    save_record(layout, spec, time.time())
    temp = _stale_temp(layout.manifests_dir, layout.manifest_path("m").name)
    record_temp = _stale_temp(layout.jobs_dir, record_path(layout, "m").name)
    fresh = layout.manifests_dir / ".other.json.999999.tmp"  # a live writer's: left alone
    fresh.write_text("{")

    code, out, err = await _pull(config_file, url, "--sha256", sha)
    assert code == 0, err
    assert "not managed" not in err
    assert server.requests("/m.gguf") == []  # recognised by its bytes, not downloaded again
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256"] == sha
    assert manifest["files"][0]["sha256_source"] == "user"
    assert not temp.exists() and not record_temp.exists()
    assert fresh.exists()
    assert not record_path(layout, "m").exists()
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "verified"


async def test_placed_file_with_its_resume_state_but_no_reference(
    server, config_file, store, gguf_bytes
):
    """Without an expected SHA-256 the resume state still there (same source, same size) and a
    whole GGUF header recognise the file; its hash is recorded, not 'verified'."""
    url = server.add("/p.gguf", gguf_bytes)
    layout = StoreLayout(store)
    layout.ensure()
    (store / "p.gguf").write_bytes(gguf_bytes)
    spec = url_spec(url, sha256=None, name=None)
    save_record(layout, spec, time.time())
    request = spec.files[0]
    state = ResumeState(request.resume_key, request.dest, total_size=len(gguf_bytes))
    state.ranges = [[0, len(gguf_bytes)]]
    state.save(layout.state_path(request.key_hash))

    code, out, err = await _pull(config_file, url)
    assert code == 0, err
    assert server.requests("/p.gguf") == []
    assert "SHA-256 recorded" in out
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256"] == sha256_of(store / "p.gguf")
    assert _hidden_files(store, "partials") == [] and _hidden_files(store, "jobs") == []


@pytest.mark.parametrize("old_copy", [False, True], ids=["fresh", "replacing-a-corrupt-copy"])
async def test_killed_between_manifest_and_rename(
    server, config_file, store, gguf_bytes, old_copy
):
    """The window of this version: the manifest (written first) lists the file, the whole
    partial and its resume state are still in the partials folder, and at dest there is
    nothing, or (a repair) the old corrupt copy of the same size."""
    url = server.add("/k.gguf", gguf_bytes)
    sha = server.sha256("/k.gguf")
    code, _out, err = await _pull(config_file, url, "--sha256", sha)
    assert code == 0, err
    layout = StoreLayout(store)
    spec = url_spec(url, sha256=sha, name=None)
    request = spec.files[0]
    os.replace(store / "k.gguf", layout.partial_path(request.key_hash))
    state = ResumeState(request.resume_key, request.dest, total_size=len(gguf_bytes),
                        expected_sha256=sha)
    state.ranges = [[0, len(gguf_bytes)]]
    state.save(layout.state_path(request.key_hash))
    save_record(layout, spec, time.time())
    if old_copy:
        corrupt = bytearray(gguf_bytes)
        corrupt[-100] ^= 0xFF
        (store / "k.gguf").write_bytes(corrupt)
    served = len(server.requests("/k.gguf"))

    code, out, err = await _pull(config_file, url, "--sha256", sha)
    assert code == 0, err
    assert "already in the store" not in out  # the manifest alone does not count as placed
    assert len(server.requests("/k.gguf")) == served  # the partial was whole: re-hashed only
    assert sha256_of(store / "k.gguf") == sha
    assert _hidden_files(store, "partials") == [] and _hidden_files(store, "jobs") == []


async def test_directory_in_the_way_of_the_manifest(server, config_file, store, gguf_bytes):
    url = server.add("/d.gguf", gguf_bytes)
    layout = StoreLayout(store)
    layout.ensure()
    blocker = layout.manifest_path("d")
    blocker.mkdir()
    code, _out, err = await _pull(config_file, url)
    assert code == 1
    assert "cannot write the manifest" in err and "Traceback" not in err
    assert visible_files(store) == []  # nothing placed that no manifest lists
    assert any(name.endswith(".part") for name in _hidden_files(store, "partials"))
    served = sum(r.bytes_sent for r in server.requests("/d.gguf"))

    blocker.rmdir()
    code, out, err = await _pull(config_file, url)
    assert code == 0, err
    assert sum(r.bytes_sent for r in server.requests("/d.gguf")) == served  # nothing re-sent
    assert sha256_of(store / "d.gguf") == server.sha256("/d.gguf")
    assert [m["name"] for m in _manifests(store)] == ["d"]


@pytest.fixture
def full_manifests_dir(store: Path):
    """A real tiny tmpfs mounted on the manifests folder and filled up: writing there fails
    with ENOSPC while the partials folder still has room."""
    layout = StoreLayout(store)
    layout.ensure()
    folder = layout.manifests_dir
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    filler = folder / ".filler"
    try:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(fd)
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_disk_full_while_writing_the_manifest_pauses(
    server, config_file, store, gguf_bytes, full_manifests_dir
):
    url = server.add("/f.gguf", gguf_bytes)
    sha = server.sha256("/f.gguf")
    code, _out, err = await _pull(config_file, url, "--sha256", sha)
    assert code == 1
    assert "paused" in err and "disk full while writing the manifest" in err
    assert "partial is kept" in err and "Traceback" not in err
    assert visible_files(store) == []
    assert not [n for n in os.listdir(full_manifests_dir.parent) if n.endswith(".tmp")]
    served = sum(r.bytes_sent for r in server.requests("/f.gguf"))

    full_manifests_dir.unlink()  # space freed
    code, out, err = await _pull(config_file, url, "--sha256", sha)
    assert code == 0, err
    assert "SHA-256 verified" in out
    assert sum(r.bytes_sent for r in server.requests("/f.gguf")) == served
    assert sha256_of(store / "f.gguf") == sha

