"""Malformed other stores are listed as broken or skipped with a reason, and nothing outside
the store roots is touched: a decoy file with the same bytes as a model sits outside every
root, reached only through planted links and path tricks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gguf_tui.store.others import TOOL_HF, TOOL_LMSTUDIO, TOOL_OLLAMA, scan_other_stores
from tests.conftest import sha256_of
from tests.helpers.ggufgen import make_gguf
from tests.helpers.otherstores import (
    other_stores_config,
    run_cli,
    sha256_bytes,
    write_lmstudio_model,
    write_ollama_model,
)


@pytest.fixture
def broken(tmp_path: Path):
    data = make_gguf(tmp_path / "src" / "m.gguf", tensor_bytes=1 << 15, seed=3).read_bytes()
    good = make_gguf(tmp_path / "src" / "g.gguf", tensor_bytes=1 << 15, seed=4).read_bytes()
    sha = sha256_bytes(data)
    decoy = tmp_path / "outside" / "decoy.gguf"
    decoy.parent.mkdir()
    decoy.write_bytes(data)

    # HF cache: a good snapshot, a dangling one (blob gone), one linking outside the cache.
    hf = tmp_path / "hf"
    repo = hf / "models--acme--Tiny-GGUF"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    rev = "a" * 40
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (repo / "blobs" / sha256_bytes(good)).write_bytes(good)
    os.symlink(f"../../blobs/{sha256_bytes(good)}", snap / "good-Q4_0.gguf")
    os.symlink(f"../../blobs/{'b' * 64}", snap / "dangling-Q4_0.gguf")
    os.symlink(str(decoy), snap / "escape-Q4_0.gguf")
    os.symlink(str(decoy.parent), repo / "snapshots" / ("c" * 40))  # a snapshot folder link

    # Ollama: a truncated manifest, one naming a missing blob, one with a path-trick digest,
    # one whose blob is a link out of the store.
    ollama = tmp_path / "ollama"
    write_ollama_model(ollama, "good", "latest", good)
    cut = write_ollama_model(ollama, "cut", "latest", good)
    cut.write_text(cut.read_text()[:40])
    missing = write_ollama_model(ollama, "missing", "latest", b"GGUF-never-stored")
    (ollama / "blobs" / f"sha256-{sha256_bytes(b'GGUF-never-stored')}").unlink()
    trick = write_ollama_model(ollama, "trick", "latest", good)
    manifest = json.loads(trick.read_text())
    manifest["layers"][0]["digest"] = "sha256:../../../outside/decoy.gguf"
    trick.write_text(json.dumps(manifest))
    linked = write_ollama_model(ollama, "linked", "latest", data)
    blob = ollama / "blobs" / f"sha256-{sha}"
    blob.unlink()
    os.symlink(str(decoy), blob)

    # LM Studio: a .gguf that is a link to the decoy.
    lmstudio = tmp_path / "lmstudio"
    folder = write_lmstudio_model(lmstudio, "pub", "Repo", {"fine.gguf": good})
    os.symlink(str(decoy), folder / "escape.gguf")
    os.symlink(str(decoy.parent), lmstudio / "linked-publisher")

    store = tmp_path / "store"
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        other_stores_config(store, {"hf_cache": hf, "ollama": ollama, "lmstudio": lmstudio})
    )
    # Our store holds the decoy's bytes too: dedupe would link the decoy if it ever reached it.
    ours = tmp_path / "ours.gguf"
    ours.write_bytes(data)
    assert run_cli(config_file, "import", str(ours), "--copy").returncode == 0
    places = {TOOL_HF: [hf], TOOL_OLLAMA: [ollama], TOOL_LMSTUDIO: [lmstudio]}
    return places, config_file, decoy, {"missing": missing, "linked": linked, "cut": cut}


def _decoy_state(decoy: Path) -> tuple:
    stat = os.stat(decoy)
    return stat.st_ino, stat.st_nlink, stat.st_mtime_ns, sha256_of(decoy)


def test_broken_entries_are_listed_with_a_reason(broken):
    places, _config, _decoy, manifests = broken
    snapshot = scan_other_stores(places)
    problems = {(m.tool, m.name): m.problem for m in snapshot.models}
    assert problems[("hf", "acme/Tiny-GGUF/good-Q4_0.gguf")] is None
    assert "dangling symlink" in problems[("hf", "acme/Tiny-GGUF/dangling-Q4_0.gguf")]
    assert "outside the store" in problems[("hf", "acme/Tiny-GGUF/escape-Q4_0.gguf")]
    assert problems[("ollama", "good:latest")] is None
    assert "is missing" in problems[("ollama", "missing:latest")]
    assert "outside the store" in problems[("ollama", "trick:latest")]
    assert "outside the store" in problems[("ollama", "linked:latest")]
    assert problems[("lmstudio", "pub/Repo/fine.gguf")] is None
    assert "outside the store" in problems[("lmstudio", "pub/Repo/escape.gguf")]
    skipped = {entry.path: entry.reason for entry in snapshot.skipped}
    assert "not valid JSON" in skipped[manifests["cut"]]
    hf_root, lms_root = places[TOOL_HF][0], places[TOOL_LMSTUDIO][0]
    linked_snapshot = hf_root / "models--acme--Tiny-GGUF" / "snapshots" / ("c" * 40)
    assert "symlinked folder" in skipped[linked_snapshot]
    assert "symlinked folder" in skipped[lms_root / "linked-publisher"]
    # Broken models hold no files: nothing of theirs counts, nothing can be linked or imported.
    assert all(not m.files for m in snapshot.models if m.problem)


def test_commands_never_touch_anything_outside_the_roots(broken):
    _places, config_file, decoy, _manifests = broken
    before = _decoy_state(decoy)
    listing = run_cli(config_file, "ls", "--all")
    assert listing.returncode == 0, listing.stderr
    assert "broken: dangling symlink" in listing.stdout
    assert "skipped" in listing.stdout and "not valid JSON" in listing.stdout
    dedupe = run_cli(config_file, "dedupe", "--yes", "--json")
    assert dedupe.returncode == 0, dedupe.stderr
    assert str(decoy) not in dedupe.stdout
    imported = run_cli(config_file, "import", "--from", "hf")
    assert imported.returncode == 0, imported.stderr
    refused = run_cli(config_file, "import", "--from", "ollama", "linked")
    assert refused.returncode == 1
    assert "ollama model linked:latest is broken: model layer: symlink points outside the store" in (
        refused.stderr
    )
    assert _decoy_state(decoy) == before
