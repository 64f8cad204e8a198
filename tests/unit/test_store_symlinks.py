"""Deleting never follows a symlink out of the store and never deletes a symlink's target."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.manifest import Manifest, ManifestFile
from tests.conftest import sha256_of
from tests.helpers.ggufgen import add_managed_model, make_gguf


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return make_gguf(tmp_path / "elsewhere" / "Precious-Q4_K_M.gguf", tensor_bytes=64 << 10)


async def test_rm_removes_the_link_not_its_target(cli, store, outside):
    store.mkdir(parents=True)
    digest = sha256_of(outside)
    (store / "linked.gguf").symlink_to(outside)
    listing = json.loads((await cli("ls", "--json")).out)
    [model] = listing["models"]
    assert model["name"] == "linked" and model["files"][0]["symlink"]
    assert model["size"] == outside.stat().st_size
    assert listing["total_size"] == 0  # the bytes live outside the store

    result = await cli("rm", "linked", "--yes")
    assert result.code == 0, result.err
    assert "symlink(s) removed, targets kept" in result.out
    assert not os.path.lexists(store / "linked.gguf")
    assert sha256_of(outside) == digest


async def test_prune_removes_the_link_at_most(cli, store, outside, tmp_path):
    real = make_gguf(tmp_path / "src" / "real.gguf", tensor_bytes=32 << 10)
    add_managed_model(store, "real", {"real.gguf": real}, added_at=1.0, last_used_at=2.0)
    (store / "linked.gguf").symlink_to(outside)
    os.utime(outside, (1.0, 1.0))  # linked long ago, not read since
    os.utime(store / "linked.gguf", (1.0, 1.0), follow_symlinks=False)
    result = await cli("prune", "--max-size", "0", "--unused-for", "1d", "--yes")
    assert result.code == 0, result.err
    assert not os.path.lexists(store / "linked.gguf")
    assert not (store / "real.gguf").exists()
    assert outside.exists() and outside.stat().st_size > 0


async def test_manifest_path_through_a_symlinked_folder_is_refused(cli, store, outside):
    layout = StoreLayout(store)
    layout.ensure()
    (store / "evil").symlink_to(outside.parent, target_is_directory=True)
    digest = sha256_of(outside)
    Manifest(
        name="evil",
        files=[ManifestFile(f"evil/{outside.name}", outside.stat().st_size, digest)],
    ).save(layout.manifest_path("evil"))

    result = await cli("rm", "evil", "--yes")
    assert result.code == 1
    assert "never follows a link out of the store" in result.err
    assert sha256_of(outside) == digest
    assert layout.manifest_path("evil").exists()  # kept, so the model stays visible


async def test_scan_does_not_descend_into_symlinked_folders(cli, store, outside):
    store.mkdir(parents=True)
    (store / "mirror").symlink_to(outside.parent, target_is_directory=True)
    listing = json.loads((await cli("ls", "--json")).out)
    assert listing["models"] == []
    pruned = await cli("prune", "--max-size", "0", "--yes")
    assert pruned.code == 0
    assert outside.exists() and (store / "mirror").is_symlink()
