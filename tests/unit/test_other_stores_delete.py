"""`rm --from TOOL`: deleting from another tool's store by that tool's own rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from tests.helpers.ggufgen import make_gguf, make_mmproj_gguf  # noqa: E402
from tests.helpers.hubsim import HubSim  # noqa: E402
from tests.helpers.otherstores import (  # noqa: E402
    other_stores_config,
    run_cli,
    sha256_bytes,
    write_ollama_model,
)


def _names(config_file: Path) -> set[tuple[str, str]]:
    listed = run_cli(config_file, "ls", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    return {(m["source"], m["name"]) for m in json.loads(listed.stdout)["other_stores"]["models"]}


def test_ollama_manifest_goes_and_a_shared_blob_stays(tmp_path: Path):
    model = make_gguf(tmp_path / "src" / "m.gguf", tensor_bytes=1 << 15, seed=1).read_bytes()
    projector = make_mmproj_gguf(tmp_path / "src" / "p.gguf").read_bytes()
    qwen = make_gguf(tmp_path / "src" / "q.gguf", tensor_bytes=1 << 15, seed=2).read_bytes()
    ollama = tmp_path / "ollama"
    latest = write_ollama_model(ollama, "llava", "latest", model, projector=projector)
    seven = write_ollama_model(ollama, "llava", "7b", model, projector=projector)
    write_ollama_model(ollama, "qwen", "0.5b", qwen)
    store = tmp_path / "store"
    store.mkdir()
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"ollama": ollama}))
    blob = ollama / "blobs" / f"sha256-{sha256_bytes(model)}"

    refused = run_cli(config_file, "rm", "--from", "ollama", "llava:latest", stdin="")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert latest.exists()

    result = run_cli(config_file, "rm", "--from", "ollama", "llava:latest", "--yes")
    assert result.returncode == 0, result.stderr
    assert "deleted from Ollama's store" in result.stdout
    assert not latest.exists() and seven.exists()
    assert blob.exists()  # llava:7b still references it
    assert _names(config_file) == {("ollama", "llava:7b"), ("ollama", "qwen:0.5b")}

    result = run_cli(config_file, "rm", "--from", "ollama", "llava:7b", "--yes")
    assert result.returncode == 0, result.stderr
    assert not blob.exists()
    assert not (ollama / "blobs" / f"sha256-{sha256_bytes(projector)}").exists()
    assert (ollama / "blobs" / f"sha256-{sha256_bytes(qwen)}").exists()
    assert _names(config_file) == {("ollama", "qwen:0.5b")}


def test_hf_snapshot_link_goes_and_a_blob_another_snapshot_uses_stays(tmp_path: Path):
    q4 = make_gguf(tmp_path / "src" / "a.gguf", tensor_bytes=1 << 15, seed=1).read_bytes()
    q8 = make_gguf(tmp_path / "src" / "b.gguf", tensor_bytes=1 << 15, seed=2).read_bytes()
    mmproj = make_mmproj_gguf(tmp_path / "src" / "p.gguf").read_bytes()
    cache = tmp_path / "hf"
    repo_id = "acme/Tiny-GGUF"
    with HubSim() as hub:
        hub.add_repo(repo_id, {"Tiny-Q4_0.gguf": q4, "Tiny-Q8_0.gguf": q8, "mmproj-F16.gguf": mmproj})
        for name in ("Tiny-Q4_0.gguf", "Tiny-Q8_0.gguf", "mmproj-F16.gguf"):
            huggingface_hub.hf_hub_download(repo_id, name, cache_dir=cache, endpoint=hub.endpoint)
    repo = cache / "models--acme--Tiny-GGUF"
    current = (repo / "refs" / "main").read_text()
    # An older commit that had the same Q8 file: huggingface_hub links both to one blob.
    old = repo / "snapshots" / ("0" * 40)
    old.mkdir()
    os.symlink(f"../../blobs/{sha256_bytes(q8)}", old / "Tiny-Q8_0.gguf")
    store = tmp_path / "store"
    store.mkdir()
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"hf_cache": cache}))

    q4_name = f"{repo_id}/Tiny-Q4_0.gguf"
    result = run_cli(config_file, "rm", "--from", "hf", q4_name, "--yes")
    assert result.returncode == 0, result.stderr
    assert not (repo / "snapshots" / current / "Tiny-Q4_0.gguf").exists()
    assert not (repo / "blobs" / sha256_bytes(q4)).exists()
    assert (repo / "blobs" / sha256_bytes(mmproj)).exists()  # Q8 in that snapshot still uses it

    result = run_cli(config_file, "rm", "--from", "hf", f"{repo_id}/Tiny-Q8_0.gguf", "--yes")
    assert result.returncode == 0, result.stderr
    assert (repo / "blobs" / sha256_bytes(q8)).exists()  # the old snapshot still links to it
    assert not (repo / "blobs" / sha256_bytes(mmproj)).exists()  # no model left to use it
    info = huggingface_hub.scan_cache_dir(cache)
    assert info.warnings == []
    assert _names(config_file) == {("hf", f"{repo_id}@00000000/Tiny-Q8_0.gguf")}


def test_prune_all_deletes_other_tools_models_unused_for_long(tmp_path: Path):
    old = make_gguf(tmp_path / "src" / "o.gguf", tensor_bytes=1 << 15, seed=1).read_bytes()
    new = make_gguf(tmp_path / "src" / "n.gguf", tensor_bytes=1 << 15, seed=2).read_bytes()
    ollama = tmp_path / "ollama"
    old_manifest = write_ollama_model(ollama, "old", "latest", old)
    write_ollama_model(ollama, "new", "latest", new)
    long_ago = 1_600_000_000
    os.utime(ollama / "blobs" / f"sha256-{sha256_bytes(old)}", (long_ago, long_ago))
    store = tmp_path / "store"
    store.mkdir()
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"ollama": ollama}))

    dry = run_cli(config_file, "prune", "--all", "--unused-for", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete [ollama] old:latest" in dry.stdout and "new:latest" not in dry.stdout
    assert old_manifest.exists()
    refused = run_cli(config_file, "prune", "--all", "--unused-for", "30d", stdin="")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert "from Ollama's store" in refused.stderr  # the question names the tool
    assert old_manifest.exists()
    usage = run_cli(config_file, "prune", "--all", "--max-size", "1G")
    assert usage.returncode == 2 and "--unused-for" in usage.stderr

    done = run_cli(config_file, "prune", "--all", "--unused-for", "30d", "--yes")
    assert done.returncode == 0, done.stderr
    assert "removed [ollama] old:latest" in done.stdout
    assert not old_manifest.exists()
    assert not (ollama / "blobs" / f"sha256-{sha256_bytes(old)}").exists()
    assert (ollama / "blobs" / f"sha256-{sha256_bytes(new)}").exists()
    assert _names(config_file) == {("ollama", "new:latest")}
