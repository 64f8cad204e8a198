"""`gguf-tui dedupe`: one model stored three times (our store, the HF cache as huggingface_hub
writes it, LM Studio's folder) becomes one inode; space is measured with st_blocks."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from gguf_tui.store.layout import StoreLayout  # noqa: E402
from gguf_tui.store.locks import DownloadLock  # noqa: E402
from tests.conftest import sha256_of  # noqa: E402
from tests.helpers.ggufgen import make_gguf  # noqa: E402
from tests.helpers.hubsim import HubSim  # noqa: E402
from tests.helpers.otherstores import (  # noqa: E402
    other_stores_config,
    run_cli,
    write_lmstudio_model,
    write_ollama_model,
)

REPO = "acme/Dup-GGUF"


def _blocks(paths: list[Path]) -> int:
    """Bytes on disk of the distinct files behind `paths` (a hard link counted once)."""
    seen = {}
    for path in paths:
        stat = os.stat(path)
        seen[(stat.st_dev, stat.st_ino)] = stat.st_blocks * 512
    return sum(seen.values())


@pytest.fixture
def three_copies(tmp_path: Path):
    source = make_gguf(tmp_path / "src" / "Dup-Q4_0.gguf", tensor_bytes=1 << 20, seed=7)
    data = source.read_bytes()
    cache = tmp_path / "hf-cache"
    with HubSim() as hub:
        hub.add_repo(REPO, {"Dup-Q4_0.gguf": data})
        cached = huggingface_hub.hf_hub_download(
            REPO, "Dup-Q4_0.gguf", cache_dir=cache, endpoint=hub.endpoint
        )
    lmstudio = tmp_path / "home" / ".lmstudio" / "models"
    flipped = bytearray(data)
    flipped[-1] ^= 0x01  # the last tensor byte: still a readable GGUF, other bytes
    write_lmstudio_model(lmstudio, "pub", "Dup-GGUF",
                         {"Dup-Q4_0.gguf": data, "Dup-Q4_0-bitflip.gguf": bytes(flipped)})
    store = tmp_path / "store"
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"hf_cache": cache, "lmstudio": lmstudio}))
    imported = run_cli(config_file, "import", str(source), "--copy")
    assert imported.returncode == 0, imported.stderr
    paths = {
        "ours": store / "Dup-Q4_0.gguf",
        "hf": Path(cached),
        "lmstudio": lmstudio / "pub" / "Dup-GGUF" / "Dup-Q4_0.gguf",
        "flipped": lmstudio / "pub" / "Dup-GGUF" / "Dup-Q4_0-bitflip.gguf",
    }
    return config_file, store, paths, sha256_of(source)


def test_dedupe_frees_two_copies_and_keeps_every_path(three_copies):
    config_file, store, paths, sha = three_copies
    copies = [paths["ours"], paths["hf"], paths["lmstudio"]]
    before = _blocks(copies)
    size = paths["ours"].stat().st_size
    flipped_inode = os.stat(paths["flipped"]).st_ino
    dry = run_cli(config_file, "dedupe", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["reclaimable_bytes"] == 2 * size
    assert _blocks(copies) == before  # a dry run changes nothing

    result = run_cli(config_file, "dedupe", "--yes")
    assert result.returncode == 0, result.stderr
    after = _blocks(copies)
    assert before - after >= 2 * size - 8192, (before, after)
    assert len({os.stat(p).st_ino for p in copies}) == 1
    for path in copies:
        assert sha256_of(path) == sha
    # The HF layout is intact: the snapshot is still a link to the blob named by the SHA-256.
    assert paths["hf"].is_symlink() and paths["hf"].resolve().name == sha
    assert huggingface_hub.scan_cache_dir(paths["hf"].parents[3]).warnings == []
    # A copy one bit away is another file: never linked.
    assert os.stat(paths["flipped"]).st_ino == flipped_inode
    assert sha256_of(paths["flipped"]) != sha
    assert (store / ".gguf-tui" / "hashes.json").is_file()  # LM Studio's files hashed once
    verify = run_cli(config_file, "verify")
    assert verify.returncode == 0, verify.stderr  # our manifest still matches its file

    again = run_cli(config_file, "dedupe", "--yes", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["actions"] == [] and report["freed_bytes"] == 0
    assert len({os.stat(p).st_ino for p in copies}) == 1


def test_dedupe_needs_yes_without_a_terminal(three_copies):
    config_file, _store, paths, _sha = three_copies
    inode = os.stat(paths["lmstudio"]).st_ino
    result = run_cli(config_file, "dedupe", stdin="")
    assert result.returncode == 2 and "pass --yes" in result.stderr
    assert os.stat(paths["lmstudio"]).st_ino == inode


def test_a_blob_whose_name_lies_is_verified_and_left_alone(three_copies, tmp_path: Path):
    """An Ollama blob named by the right SHA-256 but holding other bytes is never linked."""
    config_file, store, paths, sha = three_copies
    data = bytearray(paths["ours"].read_bytes())
    ollama = tmp_path / "ollama"
    write_ollama_model(ollama, "dup", "latest", bytes(data))
    blob = ollama / "blobs" / f"sha256-{sha}"
    data[100] ^= 0x80
    blob.write_bytes(bytes(data))
    config_file.write_text(other_stores_config(store, {"ollama": ollama}))
    inode = os.stat(blob).st_ino
    result = run_cli(config_file, "dedupe", "--yes")
    assert result.returncode == 0, result.stderr
    assert "bytes differ" in result.stdout
    assert os.stat(blob).st_ino == inode and sha256_of(blob) != sha


def test_a_file_a_running_download_owns_is_left_alone(three_copies):
    config_file, store, paths, _sha = three_copies
    layout = StoreLayout(store)
    lock = DownloadLock(layout.lock_path("k" * 32), what="Dup-Q4_0.gguf")
    lock.acquire()
    try:
        inodes = {name: os.stat(p).st_ino for name, p in paths.items()}
        result = run_cli(config_file, "dedupe", "--yes", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["freed_bytes"] == 0
        assert {a["path"] for a in report["actions"]} == {str(paths["hf"].resolve()),
                                                          str(paths["lmstudio"])}
        for action in report["actions"]:
            assert action["result"] == "skipped"
            assert "download in progress" in action["reason"]
        assert {name: os.stat(p).st_ino for name, p in paths.items()} == inodes
    finally:
        lock.release()


def test_copies_on_another_filesystem_are_reported_not_linked(three_copies):
    config_file, store, paths, _sha = three_copies
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(store).st_dev:
        pytest.skip("no second filesystem here")
    other = Path(tempfile.mkdtemp(dir=shm))
    try:
        far = write_lmstudio_model(other, "pub", "Far", {"Dup-Q4_0.gguf": paths["ours"].read_bytes()})
        config_file.write_text(other_stores_config(store, {"lmstudio": other}))
        inode = os.stat(far / "Dup-Q4_0.gguf").st_ino
        result = run_cli(config_file, "dedupe", "--yes", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["groups"][0]["across_filesystems"] is True
        assert report["freed_bytes"] == 0
        assert os.stat(far / "Dup-Q4_0.gguf").st_ino == inode
    finally:
        shutil.rmtree(other)
