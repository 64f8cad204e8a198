"""State files nested too deeply for the JSON parser are unreadable files, never a crash.

A manifest, resume state, queue record or lock of `[[[[…` a few hundred thousand deep makes
`json.loads` raise RecursionError, which is not a ValueError: every state reader must treat it as
an unreadable file (a problem listed, a state discarded), as it does any other bad JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gguf_tui.engine.records import load_records
from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.fsutil import StateJSONError, load_json_file
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.locks import read_owner
from gguf_tui.store.manifest import Manifest, ManifestError
from tests.conftest import cli_subprocess_env
from tests.helpers.ggufgen import add_managed_model, make_gguf

DEEP = "[" * 200_000 + "]" * 200_000


def run_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gguf_tui", *args],
        env=cli_subprocess_env(config_file),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_load_json_file_turns_deep_nesting_into_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    with pytest.raises(StateJSONError, match="nested too deeply"):
        load_json_file(path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_json_file(tmp_path / "bad.json")


def test_every_state_reader_calls_a_deep_file_unreadable(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path / "store")
    layout.ensure()
    layout.jobs_dir.mkdir(parents=True, exist_ok=True)
    for path in (
        layout.manifests_dir / "deep.json",
        layout.state_path("0123abcd"),
        layout.jobs_dir / "deep.json",
        layout.lock_path("0123abcd"),
    ):
        path.write_text(DEEP)
    with pytest.raises(ManifestError):
        Manifest.load(layout.manifests_dir / "deep.json")
    with pytest.raises(ResumeStateError):
        ResumeState.load(layout.state_path("0123abcd"))
    jobs, problems = load_records(layout)
    assert jobs == [] and any("deep.json" in line for line in problems)
    assert read_owner(layout.lock_path("0123abcd")) is None


def test_store_commands_list_deep_state_files_as_problems(
    config_file: Path, store: Path, tmp_path: Path
) -> None:
    layout = StoreLayout(store)
    layout.ensure()
    layout.jobs_dir.mkdir(parents=True, exist_ok=True)
    source = make_gguf(tmp_path / "src" / "Real-Q8_0.gguf", tensor_bytes=4096)
    add_managed_model(store, "real", {"Real-Q8_0.gguf": source})
    (layout.manifests_dir / "deep.json").write_text(DEEP)
    layout.state_path("0123abcd").write_text(DEEP)
    layout.partial_path("0123abcd").write_bytes(b"\0" * 4096)
    (layout.jobs_dir / "deep.json").write_text(DEEP)

    listed = run_cli(config_file, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    snapshot = json.loads(listed.stdout)
    assert [m["name"] for m in snapshot["models"]] == ["real"]
    assert any("deep.json" in p["manifest"] for p in snapshot["problems"])
    for command in (["status"], ["info", "real"], ["verify", "real"], ["prune", "--partials", "--dry-run"]):
        result = run_cli(config_file, *command)
        assert "Traceback" not in result.stderr and "recursion" not in result.stderr, result.stderr
        assert result.returncode in (0, 1), (command, result.returncode, result.stderr)
    assert layout.manifest_path("real").exists()
