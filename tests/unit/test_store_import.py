"""`import`: --link, --move, --copy, adoption in place, and no file stored twice."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.ggufgen import make_gguf, make_mmproj_gguf, make_split_gguf


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_gguf(tmp_path / "outside" / "Local-Q8_0.gguf", tensor_bytes=128 << 10, name="local")


def _manifests(store: Path) -> list[dict]:
    folder = store / ".gguf-tui" / "manifests"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


async def test_copy_keeps_the_original(cli, store, source):
    digest = sha256_of(source)
    result = await cli("import", "--copy", str(source))
    assert result.code == 0, result.err
    assert "Local-Q8_0: imported (1 file)" in result.out
    assert source.exists()
    assert visible_files(store) == ["Local-Q8_0.gguf"]
    assert os.stat(store / "Local-Q8_0.gguf").st_ino != os.stat(source).st_ino
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256"] == digest
    assert manifest["gguf"]["architecture"] == "llama"
    assert manifest["source"]["kind"] == "import"
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["managed"] and model["state"] == "recorded"  # no published hash to check
    assert not list((store / ".gguf-tui" / "partials").iterdir())  # no temp file left
    assert (await cli("verify", "Local")).code == 0


async def test_move_takes_the_file(cli, store, source):
    digest = sha256_of(source)
    result = await cli("import", "--move", str(source))
    assert result.code == 0, result.err
    assert not source.exists()
    assert sha256_of(store / "Local-Q8_0.gguf") == digest


async def test_link_shares_the_inode(cli, store, source):
    result = await cli("import", "--link", str(source))
    assert result.code == 0, result.err
    placed = store / "Local-Q8_0.gguf"
    assert os.stat(placed).st_ino == os.stat(source).st_ino
    assert os.stat(source).st_nlink == 2


async def test_link_across_filesystems_says_why_and_stops(cli, store, tmp_path, source):
    store.mkdir(parents=True)
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(store).st_dev:
        pytest.skip("no second filesystem to link across")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        elsewhere = Path(other) / "Far.gguf"
        shutil.copy(source, elsewhere)
        result = await cli("import", "--link", str(elsewhere), str(source))
        assert result.code == 1
        assert "cannot hard-link" in result.err and "another filesystem" in result.err
        assert "--copy" in result.err
        assert elsewhere.exists()
    assert visible_files(store) == []  # stopped: the second path was not imported either
    assert _manifests(store) == []


async def test_duplicate_by_hash_is_not_stored_twice(cli, store, source, tmp_path):
    assert (await cli("import", "--copy", str(source))).code == 0
    renamed = tmp_path / "elsewhere" / "Same-Bytes.gguf"
    renamed.parent.mkdir()
    shutil.copy(source, renamed)
    again = await cli("import", "--copy", str(renamed))
    assert again.code == 0, again.err
    assert "already in the store" in again.out
    assert "Local-Q8_0.gguf" in again.err
    assert visible_files(store) == ["Local-Q8_0.gguf"]
    assert len(_manifests(store)) == 1
    same = await cli("import", "--move", str(source))
    assert same.code == 0 and "already in the store" in same.out
    assert source.exists()  # nothing moved when the store already holds the bytes


async def test_adopts_unmanaged_files_in_place_and_groups_split_parts(cli, store, tmp_path):
    parts = make_split_gguf(store / "owner" / "Split-GGUF")
    loose = make_gguf(store / "loose.gguf", tensor_bytes=32 << 10)
    before = json.loads((await cli("ls", "--json")).out)["models"]
    assert {m["name"]: m["managed"] for m in before} == {
        "loose": False, "owner/Split-GGUF/Tiny-Split-Q8_0": False}

    result = await cli("import", str(store / "owner"), str(loose))
    assert result.code == 0, result.err
    assert "adopted" in result.out
    after = {m["name"]: m for m in json.loads((await cli("ls", "--json")).out)["models"]}
    split = after["owner/Split-GGUF/Tiny-Split-Q8_0"]
    assert split["managed"] and len(split["files"]) == 3
    assert [f["role"] for f in split["files"]] == ["part"] * 3
    assert split["parameter_count"] == 3 * 2 * 256 * 256  # summed over the parts
    assert after["loose"]["managed"]
    assert all(p.exists() for p in parts)  # nothing moved


async def test_name_groups_a_model_and_its_mmproj(cli, store, tmp_path, source):
    mmproj = make_mmproj_gguf(tmp_path / "outside" / "mmproj-F16.gguf")
    result = await cli("import", "--copy", "--name", "local-vision", str(source), str(mmproj))
    assert result.code == 0, result.err
    [manifest] = _manifests(store)
    assert manifest["name"] == "local-vision"
    assert [f["role"] for f in manifest["files"]] == ["model", "mmproj"]
    path = await cli("path", "--mmproj", "local-vision")
    assert path.out.strip() == str(store / "mmproj-F16.gguf")


async def test_not_a_gguf_is_refused(cli, store, tmp_path):
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("hello")
    result = await cli("import", str(bogus))
    assert result.code == 1
    assert "not a GGUF file" in result.err
    missing = await cli("import", str(tmp_path / "nope.gguf"))
    assert missing.code == 1 and "no such file" in missing.err
