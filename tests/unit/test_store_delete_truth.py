"""`prune` and `rm` say what they really deleted: a model goes whole or not at all, and whatever
could not be deleted is reported with the reason and exit 1 (never "freed 0 B", exit 0)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gguf_tui.store.layout import StoreLayout
from tests.helpers.ggufgen import add_managed_model, make_gguf
from tests.unit.test_store_confinement import run_cli

LONG_AGO = 1_000_000.0  # 1970: every policy picks it


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return make_gguf(tmp_path / "src" / "Old-Q4_K_M.gguf", tensor_bytes=16 << 10)


@pytest.fixture
def mmproj_file(tmp_path: Path) -> Path:
    return make_gguf(tmp_path / "src" / "mmproj-Old.gguf", tensor_bytes=8 << 10)


@pytest.fixture
def read_only_store(store: Path, model_file: Path):
    """The store as a real read-only bind mount (root is not stopped by file modes)."""
    add_managed_model(store, "old", {"Old-Q4_K_M.gguf": model_file},
                      added_at=LONG_AGO, last_used_at=LONG_AGO)
    bind = subprocess.run(["mount", "--bind", str(store), str(store)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(store)], capture_output=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.decode().strip()}")
        yield store
    finally:
        subprocess.run(["umount", str(store)], check=True)


@pytest.mark.parametrize("policy", [["--unused-for", "1d"], ["--max-size", "0"]])
async def test_prune_on_a_read_only_store_reports_failure(config_file, read_only_store, policy):
    result = await run_cli(config_file, "prune", *policy, "--yes")
    assert result.code == 1, (result.out, result.err)
    assert "kept old" in result.err and "read-only" in result.err
    assert "could not be deleted" in result.out
    assert (read_only_store / "Old-Q4_K_M.gguf").exists()


async def test_prune_json_on_a_read_only_store_lists_the_refusal(config_file, read_only_store):
    result = await run_cli(config_file, "prune", "--unused-for", "1d", "--yes", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["freed"] == 0 and report["deleted"] == []
    assert report["refused"] and "read-only" in report["refused"][0]["reason"]


async def test_rm_on_a_read_only_store_says_kept(config_file, read_only_store):
    result = await run_cli(config_file, "rm", "old", "--yes")
    assert result.code == 1
    assert "kept old: nothing deleted" in result.out
    assert "removed" not in result.out


async def test_prune_of_a_model_in_a_symlinked_folder_deletes_nothing(
    config_file, store, model_file, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    add_managed_model(store, "linked", {"real/Old-Q4_K_M.gguf": model_file},
                      added_at=LONG_AGO, last_used_at=LONG_AGO)
    (store / "real").rename(outside / "real")
    (store / "real").symlink_to(outside / "real", target_is_directory=True)

    result = await run_cli(config_file, "prune", "--unused-for", "1d", "--yes")

    assert result.code == 1, (result.out, result.err)
    assert "kept linked" in result.err and "symlink" in result.err
    assert (outside / "real" / "Old-Q4_K_M.gguf").exists()
    assert StoreLayout(store).manifest_path("linked").exists()  # still listed, still managed


async def test_a_folder_in_place_of_a_file_keeps_the_whole_model(
    config_file, store, model_file, mmproj_file
):
    add_managed_model(
        store, "pair", {"Old-Q4_K_M.gguf": model_file, "mmproj-Old.gguf": mmproj_file},
        roles={"mmproj-Old.gguf": "mmproj"}, added_at=LONG_AGO, last_used_at=LONG_AGO,
    )
    (store / "mmproj-Old.gguf").unlink()
    (store / "mmproj-Old.gguf").mkdir()

    result = await run_cli(config_file, "prune", "--max-size", "0", "--yes")

    assert result.code == 1, (result.out, result.err)
    assert "mmproj-Old.gguf" in result.err and "folder" in result.err
    # never half-deleted: the model's other file is still there, and so is its manifest
    assert (store / "Old-Q4_K_M.gguf").exists()
    assert StoreLayout(store).manifest_path("pair").exists()

    rm = await run_cli(config_file, "rm", "pair", "--yes")
    assert rm.code == 1
    assert (store / "Old-Q4_K_M.gguf").exists()


async def test_rm_of_a_stale_manifest_with_another_file_name_removes_it(
    config_file, store, model_file
):
    layout = StoreLayout(store)
    written = add_managed_model(store, "gone", {"Old-Q4_K_M.gguf": model_file})
    (store / "Old-Q4_K_M.gguf").unlink()
    renamed = layout.manifests_dir / "renamed-by-hand.json"
    written.rename(renamed)

    result = await run_cli(config_file, "rm", "gone", "--yes")

    assert result.code == 0, (result.out, result.err)
    assert not renamed.exists()
    assert "removed the manifest of gone (renamed-by-hand.json)" in result.out
    listing = json.loads((await run_cli(config_file, "ls", "--json")).out)
    assert listing["stale_manifests"] == []
