"""`verify` and `rm`: flipped bytes are found, every file of a model goes, downloads are safe."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.locks import DownloadLock
from tests.conftest import sha256_of, visible_files
from tests.helpers.ggufgen import add_managed_model, make_gguf, make_mmproj_gguf, make_split_gguf


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory):
    return make_gguf(tmp_path_factory.mktemp("src") / "m.gguf", tensor_bytes=256 << 10)


async def test_verify_detects_a_flipped_byte(server, cli, store, small_gguf):
    url = server.add("/m.gguf", small_gguf)
    assert (await cli("pull", url)).code == 0
    first = await cli("verify")
    assert first.code == 0, first.err
    assert "m: ok (1 file)" in first.out
    [manifest_path] = (store / ".gguf-tui" / "manifests").glob("*.json")
    recorded = json.loads(manifest_path.read_text())
    assert time.time() - recorded["files"][0]["verified_at"] < 60
    assert recorded["last_used_at"] is None  # checking a model is not using it

    with open(store / "m.gguf", "r+b") as handle:
        handle.seek(100_000)
        byte = handle.read(1)
        handle.seek(100_000)
        handle.write(bytes([byte[0] ^ 0x01]))
    bad = await cli("verify", "m")
    assert bad.code == 1
    assert "m.gguf: SHA-256 mismatch" in bad.err
    assert "verifying m.gguf" in bad.err  # progress on stderr
    listing = json.loads((await cli("ls", "--json")).out)
    assert listing["models"][0]["state"] == "corrupt"

    as_json = await cli("verify", "--json")
    assert as_json.code == 1
    [result] = json.loads(as_json.out)["results"]
    assert result["ok"] is False and result["files"][0]["path"] == "m.gguf"


async def test_verify_refuses_unmanaged(cli, store, small_gguf):
    store.mkdir(parents=True)
    (store / "loose.gguf").write_bytes(small_gguf.read_bytes())
    result = await cli("verify", "loose")
    assert result.code == 1
    assert "no recorded SHA-256" in result.err and "import" in result.err


async def test_rm_removes_every_part_and_the_mmproj(server, config, cli, store, tmp_path):
    parts = make_split_gguf(tmp_path / "src")
    mmproj = make_mmproj_gguf(tmp_path / "src" / "mmproj-F16.gguf")
    requests = [
        FileRequest(url=server.add(f"/{p.name}", p), dest=f"owner/Tiny-GGUF/{p.name}", role="part")
        for p in parts
    ]
    requests.append(
        FileRequest(url=server.add("/mmproj.gguf", mmproj), dest="owner/Tiny-GGUF/mmproj-F16.gguf",
                    role="mmproj")
    )
    async with Engine(config) as engine:
        job = await engine.wait(await engine.enqueue(JobSpec("owner/Tiny-GGUF:Q8_0", requests)))
        assert job.state == JobState.COMPLETED, job.message
    other = make_gguf(tmp_path / "src" / "keep.gguf", tensor_bytes=16 << 10)
    add_managed_model(store, "keep", {"keep.gguf": other})

    listing = json.loads((await cli("ls", "--json")).out)
    tiny = next(m for m in listing["models"] if m["name"] == "owner/Tiny-GGUF:Q8_0")
    assert [f["role"] for f in tiny["files"]] == ["part", "part", "part", "mmproj"]
    assert tiny["quant"] == "Q8_0"

    refused = await cli("rm", "Tiny")  # no terminal to ask on, no --yes
    assert refused.code == 2
    assert "pass --yes" in refused.err
    assert len(visible_files(store)) == 5

    removed = await cli("rm", "owner/Tiny-GGUF:Q8_0", "--yes")
    assert removed.code == 0, removed.err
    assert "4 file(s)" in removed.out
    assert visible_files(store) == ["keep.gguf"]
    assert not (store / "owner").exists()  # emptied folders go too
    manifests = list((store / ".gguf-tui" / "manifests").glob("*.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["name"] == "keep"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_rm_and_prune_refuse_a_file_a_download_is_writing(cli, store, small_gguf):
    add_managed_model(store, "m", {"m.gguf": small_gguf})
    layout = StoreLayout(store)
    # A real lock held by another live process, as a re-download of m.gguf would take it.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from gguf_tui.store.locks import DownloadLock; "
         f"DownloadLock(Path({str(layout.lock_path('b' * 32))!r}), what='m.gguf').acquire(); "
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = await cli("rm", "m", "--yes")
        assert result.code == 1
        assert "a download in progress is writing it" in result.err
        pruned = await cli("prune", "--max-size", "0", "--yes")
        assert "keeping m: a download in progress" in pruned.err
        assert (store / "m.gguf").exists()
    finally:
        holder.stdin.close()
        holder.wait(10)
    # The owner exited without releasing: its lock is stale, the file can go.
    assert layout.lock_path("b" * 32).exists()
    result = await cli("rm", "m", "--yes")
    assert result.code == 0, result.err
    assert visible_files(store) == []


async def test_lock_of_a_dead_process_does_not_block_rm(cli, store, small_gguf):
    add_managed_model(store, "m", {"m.gguf": small_gguf})
    lock_path = StoreLayout(store).lock_path("c" * 32)
    lock_path.write_text(json.dumps({
        "pid": _dead_pid(), "host": socket.gethostname(),
        "heartbeat": time.time(), "started": time.time(), "what": "m.gguf",
    }))
    assert (await cli("rm", "m", "--yes")).code == 0


async def test_file_shared_by_two_manifests_is_kept(cli, store, small_gguf):
    add_managed_model(store, "a", {"m.gguf": small_gguf})
    add_managed_model(store, "b", {"m.gguf": small_gguf, "b.gguf": small_gguf})
    result = await cli("rm", "b", "--yes")
    assert result.code == 0, result.err
    assert "kept m.gguf: also a file of a" in result.err
    assert visible_files(store) == ["m.gguf"]
    assert sha256_of(store / "m.gguf") == sha256_of(small_gguf)


def test_held_lock_in_this_process_counts_too(store, small_gguf):
    from gguf_tui.store.ops import StoreBusyError, delete_model
    from gguf_tui.store.scan import scan_store

    add_managed_model(store, "m", {"m.gguf": small_gguf})
    lock = DownloadLock(StoreLayout(store).lock_path("d" * 32), what="m.gguf")
    lock.acquire()
    try:
        [model] = scan_store(store).models
        with pytest.raises(StoreBusyError):
            delete_model(StoreLayout(store), model)
    finally:
        lock.release()
