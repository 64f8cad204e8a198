"""The Hugging Face cache as the real `huggingface_hub` writes it: scan, import --from, link.

The cache is filled by `huggingface_hub.hf_hub_download` from the local Hub imitation, so its
layout (`models--OWNER--REPO/{blobs,snapshots/REV,refs/main}`, LFS blobs named by SHA-256) is
the library's own, not our idea of it. Every path (HOME, caches, store) is under tmp_path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from gguf_tui.store.others import TOOL_HF, scan_other_stores  # noqa: E402
from tests.conftest import sha256_of  # noqa: E402
from tests.helpers.ggufgen import make_gguf, make_mmproj_gguf  # noqa: E402
from tests.helpers.hubsim import HubSim  # noqa: E402
from tests.helpers.otherstores import other_stores_config, run_cli  # noqa: E402

REPO = "acme/Tiny-GGUF"


@pytest.fixture
def hf_setup(tmp_path: Path):
    """An HF cache with two quants and an mmproj, downloaded by huggingface_hub itself."""
    model = make_gguf(tmp_path / "src" / "Tiny-Q4_K_M.gguf", tensor_bytes=1 << 16, seed=1)
    other = make_gguf(tmp_path / "src" / "Tiny-Q8_0.gguf", tensor_bytes=1 << 16, seed=2)
    mmproj = make_mmproj_gguf(tmp_path / "src" / "mmproj-F16.gguf")
    cache = tmp_path / "hf-cache"
    with HubSim() as hub:
        hub.add_repo(REPO, {
            "Tiny-Q4_K_M.gguf": model.read_bytes(),
            "Tiny-Q8_0.gguf": other.read_bytes(),
            "mmproj-F16.gguf": mmproj.read_bytes(),
            "README.md": b"# tiny\n",
        })
        for name in ("Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf", "mmproj-F16.gguf", "README.md"):
            huggingface_hub.hf_hub_download(REPO, name, cache_dir=cache, endpoint=hub.endpoint)
    store = tmp_path / "store"
    config_file = tmp_path / "others.yaml"
    config_file.write_text(other_stores_config(store, {"hf_cache": cache}))
    return cache, store, config_file, {"q4": model, "q8": other, "mmproj": mmproj}


def test_scan_lists_the_caches_ggufs_with_their_sha256(hf_setup):
    cache, _store, _config, sources = hf_setup
    snapshot = scan_other_stores({TOOL_HF: [cache]})
    names = sorted(model.name for model in snapshot.models)
    assert names == [f"{REPO}/Tiny-Q4_K_M.gguf", f"{REPO}/Tiny-Q8_0.gguf"]
    q4 = next(m for m in snapshot.models if m.name.endswith("Q4_K_M.gguf"))
    assert q4.problem is None and q4.tool == "hf"
    by_role = {entry.role: entry for entry in q4.files}
    assert by_role["model"].sha256 == sha256_of(sources["q4"])
    assert by_role["mmproj"].sha256 == sha256_of(sources["mmproj"])  # the projector rides along
    assert by_role["model"].path.is_symlink()  # the snapshot entry, data in blobs/
    assert by_role["model"].data_path.parent.name == "blobs"
    assert q4.gguf["architecture"] == "llama"
    assert not snapshot.skipped


def test_ls_all_json_lists_them_with_source(hf_setup):
    _cache, store, config_file, _sources = hf_setup
    store.mkdir()
    result = run_cli(config_file, "ls", "--all", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    others = data["other_stores"]["models"]
    assert {m["source"] for m in others} == {"hf"}
    assert all(f["sha256"] for m in others for f in m["files"])
    text = run_cli(config_file, "ls", "--all")
    assert text.returncode == 0, text.stderr
    assert f"{REPO}/Tiny-Q8_0.gguf" in text.stdout and "other stores: 2 models" in text.stdout


def test_import_from_hf_hard_links_without_copying(hf_setup):
    cache, store, config_file, _sources = hf_setup
    result = run_cli(config_file, "import", "--from", "hf", "Tiny-Q4_K_M")
    assert result.returncode == 0, result.stderr
    blob = (cache / f"models--{REPO.replace('/', '--')}" / "snapshots").rglob("Tiny-Q4_K_M.gguf")
    cached = next(blob).resolve()
    ours = store / "Tiny-Q4_K_M.gguf"
    assert os.stat(ours).st_ino == os.stat(cached).st_ino  # same inode: no bytes copied
    assert (store / "mmproj-F16.gguf").exists()
    listed = json.loads(run_cli(config_file, "ls", "--json").stdout)
    model = next(m for m in listed["models"] if m["managed"])
    assert model["source"]["tool"] == "hf" and model["source"]["kind"] == "import"
    assert {f["role"] for f in model["files"]} == {"model", "mmproj"}


def test_import_from_hf_with_copy_makes_a_new_inode(hf_setup):
    cache, store, config_file, _sources = hf_setup
    result = run_cli(config_file, "import", "--from", "hf", "Tiny-Q8_0", "--copy")
    assert result.returncode == 0, result.stderr
    cached = next(cache.rglob("Tiny-Q8_0.gguf")).resolve()
    assert os.stat(store / "Tiny-Q8_0.gguf").st_ino != os.stat(cached).st_ino
    assert sha256_of(store / "Tiny-Q8_0.gguf") == sha256_of(cached)


def test_link_to_hf_cache_is_found_offline_by_huggingface_hub(tmp_path: Path):
    cache = tmp_path / "empty-hf-cache"
    store = tmp_path / "store"
    config_file = tmp_path / "others.yaml"
    config_file.write_text(other_stores_config(store, {"hf_cache": cache}))
    source = make_gguf(tmp_path / "src" / "Local-Q4_0.gguf", tensor_bytes=1 << 16, seed=5)
    imported = run_cli(config_file, "import", str(source), "--copy")
    assert imported.returncode == 0, imported.stderr
    linked = run_cli(config_file, "link", "Local-Q4_0", "--to", "hf-cache", "--json")
    assert linked.returncode == 0, linked.stderr
    found = huggingface_hub.hf_hub_download(
        "local/Local-Q4_0", "Local-Q4_0.gguf", cache_dir=cache, local_files_only=True
    )
    assert os.path.samefile(found, store / "Local-Q4_0.gguf")  # our inode, not a copy
    blob = Path(found).resolve()
    assert blob.name == sha256_of(store / "Local-Q4_0.gguf")
    info = huggingface_hub.scan_cache_dir(cache)
    assert not info.warnings
    repo = next(iter(info.repos))
    assert repo.repo_id == "local/Local-Q4_0"
    assert {f.file_name for rev in repo.revisions for f in rev.files} == {"Local-Q4_0.gguf"}
    again = run_cli(config_file, "link", "Local-Q4_0", "--to", "hf-cache")
    assert again.returncode == 0, again.stderr  # linking twice changes nothing
    # ... and our own scan of that cache sees it too, with its SHA-256 from the blob's name.
    seen = scan_other_stores({TOOL_HF: [cache]})
    assert [m.name for m in seen.models] == ["local/Local-Q4_0/Local-Q4_0.gguf"]
    assert seen.models[0].files[0].sha256 == blob.name


def test_import_every_hf_model_stores_the_shared_projector_once(hf_setup):
    _cache, store, config_file, _sources = hf_setup
    result = run_cli(config_file, "import", "--from", "hf", "--json")
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)["imported"]
    assert sorted(o["name"] for o in outcomes) == [f"{REPO}/Tiny-Q4_K_M", f"{REPO}/Tiny-Q8_0"]
    assert all("mmproj-F16.gguf" in o["files"] for o in outcomes)
    assert sorted(p.name for p in store.glob("*.gguf")) == [
        "Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf", "mmproj-F16.gguf"
    ]
    again = run_cli(config_file, "import", "--from", "hf", "--json")
    assert again.returncode == 0, again.stderr
    assert {o["action"] for o in json.loads(again.stdout)["imported"]} == {"duplicate"}
