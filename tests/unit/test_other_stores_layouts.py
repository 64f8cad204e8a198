"""LM Studio, Ollama and llama.cpp stores laid out as those tools write them (see
tests/helpers/otherstores.py for each layout): listed with the right names, files and hashes;
`import --from` and `link --to lmstudio|ollama` between them and our store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gguf_tui.store.others import (
    TOOL_LLAMA_CPP,
    TOOL_LMSTUDIO,
    TOOL_OLLAMA,
    default_places,
    scan_other_stores,
)
from tests.conftest import sha256_of
from tests.helpers.ggufgen import make_gguf, make_mmproj_gguf
from tests.helpers.otherstores import (
    other_stores_config,
    run_cli,
    sha256_bytes,
    write_lmstudio_model,
    write_ollama_model,
)


@pytest.fixture
def ggufs(tmp_path: Path) -> dict[str, bytes]:
    src = tmp_path / "src"
    return {
        "llama": make_gguf(src / "a.gguf", tensor_bytes=1 << 15, seed=1).read_bytes(),
        "qwen": make_gguf(src / "b.gguf", tensor_bytes=1 << 15, seed=2, arch="qwen2").read_bytes(),
        "mmproj": make_mmproj_gguf(src / "mmproj.gguf").read_bytes(),
    }


def test_defaults_follow_each_tools_environment(tmp_path: Path):
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hfh"), "LLAMA_CACHE": "/x/llama",
           "OLLAMA_MODELS": "/x/ollama"}
    places = default_places(env)
    assert places["hf"] == [tmp_path / "hfh" / "hub"]
    assert places["llama.cpp"] == [Path("/x/llama")]
    assert places["ollama"] == [Path("/x/ollama")]
    assert places["lmstudio"] == [tmp_path / ".lmstudio" / "models",
                                  tmp_path / ".cache" / "lm-studio" / "models"]
    env = {"HOME": str(tmp_path), "HF_HUB_CACHE": "/x/hub", "HF_HOME": "/ignored"}
    bare = default_places(env)
    assert bare["hf"] == [Path("/x/hub")]
    assert bare["ollama"] == [tmp_path / ".ollama" / "models",
                              Path("/usr/share/ollama/.ollama/models")]
    assert bare["llama.cpp"] == [tmp_path / ".cache" / "llama.cpp"]


def test_ollama_models_projector_and_shared_blobs_are_listed(tmp_path: Path, ggufs):
    root = tmp_path / "home" / ".ollama" / "models"
    write_ollama_model(root, "llava", "latest", ggufs["llama"], projector=ggufs["mmproj"])
    write_ollama_model(root, "llava", "7b", ggufs["llama"], projector=ggufs["mmproj"])
    write_ollama_model(root, "qwen", "0.5b", ggufs["qwen"], namespace="someone")
    snapshot = scan_other_stores({TOOL_OLLAMA: [root]})
    by_name = {model.name: model for model in snapshot.models}
    assert sorted(by_name) == ["llava:7b", "llava:latest", "someone/qwen:0.5b"]
    llava = by_name["llava:latest"]
    assert llava.problem is None
    roles = {entry.role: entry for entry in llava.files}
    assert roles["model"].sha256 == sha256_bytes(ggufs["llama"])
    assert roles["mmproj"].sha256 == sha256_bytes(ggufs["mmproj"])
    assert roles["model"].path.name == f"sha256-{sha256_bytes(ggufs['llama'])}"
    assert llava.gguf["architecture"] == "llama"
    assert by_name["someone/qwen:0.5b"].gguf["architecture"] == "qwen2"
    # Two tags share one blob: the other stores hold each file's bytes once.
    expected = len(ggufs["llama"]) + len(ggufs["mmproj"]) + len(ggufs["qwen"])
    assert snapshot.total_size == expected


def test_lmstudio_both_layouts_and_llama_cpp_flat_cache(tmp_path: Path, ggufs):
    home = tmp_path / "home"
    new = home / ".lmstudio" / "models"
    old = home / ".cache" / "lm-studio" / "models"
    write_lmstudio_model(new, "lmstudio-community", "Tiny-GGUF",
                         {"Tiny-Q4_K_M.gguf": ggufs["llama"], "mmproj-Tiny-F16.gguf": ggufs["mmproj"]})
    write_lmstudio_model(old, "TheBloke", "Old-GGUF", {"old.Q4_0.gguf": ggufs["qwen"]})
    llama = tmp_path / "llama-cache"
    llama.mkdir()
    (llama / "acme_Tiny-GGUF_Tiny-Q4_K_M.gguf").write_bytes(ggufs["qwen"])
    (llama / "acme_Tiny-GGUF_Tiny-Q4_K_M.gguf.json").write_text('{"etag": "x"}')
    snapshot = scan_other_stores({TOOL_LMSTUDIO: [new, old], TOOL_LLAMA_CPP: [llama]})
    names = {(m.tool, m.name): m for m in snapshot.models}
    assert set(names) == {
        ("lmstudio", "lmstudio-community/Tiny-GGUF/Tiny-Q4_K_M.gguf"),
        ("lmstudio", "TheBloke/Old-GGUF/old.Q4_0.gguf"),
        ("llama.cpp", "acme_Tiny-GGUF_Tiny-Q4_K_M.gguf"),
    }
    tiny = names[("lmstudio", "lmstudio-community/Tiny-GGUF/Tiny-Q4_K_M.gguf")]
    assert [f.role for f in tiny.files] == ["model", "mmproj"]
    assert all(f.sha256 is None for f in tiny.files)  # this layout gives no hash for free


def test_import_from_ollama_and_lmstudio_by_hard_link(tmp_path: Path, ggufs):
    home = tmp_path / "home"
    ollama = home / ".ollama" / "models"
    lmstudio = home / ".lmstudio" / "models"
    write_ollama_model(ollama, "llava", "latest", ggufs["llama"], projector=ggufs["mmproj"])
    write_lmstudio_model(lmstudio, "pub", "Qwen-GGUF", {"qwen-Q4_0.gguf": ggufs["qwen"]})
    store = tmp_path / "store"
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"ollama": ollama, "lmstudio": lmstudio}))
    ollama_before = sorted(str(p.relative_to(ollama)) for p in ollama.rglob("*"))
    result = run_cli(config_file, "import", "--from", "ollama", "llava:latest", "--json")
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["imported"][0]["files"]
    assert files == ["llava-latest.gguf", "llava-latest-mmproj.gguf"]
    blob = ollama / "blobs" / f"sha256-{sha256_bytes(ggufs['llama'])}"
    assert os.stat(store / "llava-latest.gguf").st_ino == os.stat(blob).st_ino
    result = run_cli(config_file, "import", "--from", "lmstudio")
    assert result.returncode == 0, result.stderr
    assert os.path.samefile(store / "qwen-Q4_0.gguf", lmstudio / "pub/Qwen-GGUF/qwen-Q4_0.gguf")
    # The Ollama layout is untouched: a manifest per tag, blobs by digest.
    assert sorted(str(p.relative_to(ollama)) for p in ollama.rglob("*")) == ollama_before
    missing = run_cli(config_file, "import", "--from", "ollama", "nope")
    assert missing.returncode == 1 and "no ollama model matches 'nope'" in missing.stderr
    moved = run_cli(config_file, "import", "--from", "lmstudio", "--move")
    assert moved.returncode == 2 and "never moves" in moved.stderr


def test_link_to_lmstudio_and_ollama_modelfile(tmp_path: Path, ggufs):
    lmstudio = tmp_path / "home" / ".lmstudio" / "models"
    store = tmp_path / "store"
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"lmstudio": lmstudio}))
    src = tmp_path / "vision"
    src.mkdir()
    (src / "Eye-Q4_0.gguf").write_bytes(ggufs["llama"])
    (src / "mmproj-Eye-F16.gguf").write_bytes(ggufs["mmproj"])
    imported = run_cli(config_file, "import", str(src / "Eye-Q4_0.gguf"),
                       str(src / "mmproj-Eye-F16.gguf"), "--name", "Eye", "--copy")
    assert imported.returncode == 0, imported.stderr
    linked = run_cli(config_file, "link", "Eye", "--to", "lmstudio")
    assert linked.returncode == 0, linked.stderr
    folder = lmstudio / "local" / "Eye"
    assert os.path.samefile(folder / "Eye-Q4_0.gguf", store / "Eye-Q4_0.gguf")
    assert os.path.samefile(folder / "mmproj-Eye-F16.gguf", store / "mmproj-Eye-F16.gguf")
    seen = scan_other_stores({TOOL_LMSTUDIO: [lmstudio]})
    assert [m.name for m in seen.models] == ["local/Eye/Eye-Q4_0.gguf"]
    ollama = run_cli(config_file, "link", "Eye", "--to", "ollama")
    assert ollama.returncode == 0, ollama.stderr
    command = ollama.stdout.strip().splitlines()[-1]
    assert command.startswith("now run: ollama create eye -f ")
    modelfile = Path(command.split(" -f ", 1)[1])
    lines = modelfile.read_text().splitlines()
    assert f"FROM {store / 'Eye-Q4_0.gguf'}" in lines
    assert f"FROM {store / 'mmproj-Eye-F16.gguf'}" in lines
    assert modelfile.is_relative_to(store / ".gguf-tui")
    assert sha256_of(store / "Eye-Q4_0.gguf") == sha256_bytes(ggufs["llama"])


def test_scan_all_for_the_dashboard_needs_no_hashing(tmp_path: Path, ggufs):
    """Duplicates the layouts name (Ollama digest, our manifest) are found without reading."""
    from gguf_tui.config import load_config
    from gguf_tui.store.allstores import scan_all

    ollama = tmp_path / "ollama"
    write_ollama_model(ollama, "tiny", "latest", ggufs["llama"])
    write_ollama_model(ollama, "tiny", "q", ggufs["llama"])  # the same blob: counted once
    lmstudio = tmp_path / "lms"
    write_lmstudio_model(lmstudio, "pub", "Tiny", {"tiny.gguf": ggufs["llama"]})
    store = tmp_path / "store"
    config_file = tmp_path / "c.yaml"
    config_file.write_text(other_stores_config(store, {"ollama": ollama, "lmstudio": lmstudio}))
    src = tmp_path / "tiny.gguf"
    src.write_bytes(ggufs["llama"])
    assert run_cli(config_file, "import", str(src), "--copy").returncode == 0
    view = scan_all(load_config(config_file))
    size = len(ggufs["llama"])
    assert view.other_stores_bytes == 2 * size  # the Ollama blob once, LM Studio's copy
    # LM Studio's copy has no hash for free and none was computed: not counted yet.
    assert view.reclaimable_bytes == size
    assert not (store / ".gguf-tui" / "hashes.json").exists()
    assert [tool for tool, _ in view.rows("ollama")] == ["ollama", "ollama"]
    assert {tool for tool, _ in view.rows("all")} == {"gguf-tui", "ollama", "lmstudio"}
    assert [tool for tool, _ in view.rows("gguf-tui")] == ["gguf-tui"]
    # After one dedupe run hashed LM Studio's file, the quick view knows it too.
    assert run_cli(config_file, "dedupe", "--dry-run").returncode == 0
    assert scan_all(load_config(config_file)).reclaimable_bytes == 2 * size
