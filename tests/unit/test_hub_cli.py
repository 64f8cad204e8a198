"""`gguf-tui search` and `gguf-tui files` against the Hub imitation (served from a thread)."""

from __future__ import annotations

import json

import pytest

from gguf_tui.cli import main
from tests.helpers.hubsim import HubSim


@pytest.fixture(scope="module")
def hub():
    sim = HubSim()
    sim.add_repo(
        "acme/Qwen3-8B-GGUF",
        {
            "Qwen3-8B-Q4_K_M.gguf": b"4" * 4000,
            "Qwen3-8B-Q8_0.gguf": b"8" * 8000,
            "mmproj-Qwen3-8B-F16.gguf": b"m" * 600,
        },
        downloads=1_234_567,
        likes=310,
    )
    sim.add_repo(
        "acme/Qwen3-32B-GGUF",
        {f"Q4_K_M/Qwen3-32B-Q4_K_M-{i:05d}-of-00003.gguf": b"p" * 1000 for i in (1, 2, 3)}
        | {"evil\x1b[2J\x1b[31m-Q8_0.gguf": b"e" * 10, "../../escape-Q2_K.gguf": b"x"},
        downloads=880_000,
        likes=120,
        gated=True,
    )
    with sim:
        yield sim


@pytest.fixture(autouse=True)
def _env(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("GGUF_TUI_CONFIG", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _run(tmp_path, *argv: str) -> int:
    return main(["--store", str(tmp_path / "store"), *argv])


def test_search_table(tmp_path, capsys) -> None:
    assert _run(tmp_path, "search", "qwen3") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["REPO", "DOWNLOADS", "LIKES", "UPDATED"]
    assert lines[1].split()[:3] == ["acme/Qwen3-8B-GGUF", "1.2M", "310"]
    assert lines[2].startswith("acme/Qwen3-32B-GGUF") and lines[2].endswith("gated")


def test_search_json_and_limit(tmp_path, capsys) -> None:
    assert _run(tmp_path, "search", "qwen3", "--json", "--limit", "1") == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in data] == ["acme/Qwen3-8B-GGUF"]
    assert data[0]["downloads"] == 1_234_567 and data[0]["gated"] is False


def test_files_table(tmp_path, capsys) -> None:
    assert _run(tmp_path, "files", "acme/Qwen3-8B-GGUF") == 0
    out = capsys.readouterr().out
    assert "Q4_K_M" in out and "4.00 kB" in out and "1 file" in out
    assert "mmproj: mmproj-Qwen3-8B-F16.gguf" in out
    assert out.index("Q4_K_M") < out.index("Q8_0")


def test_files_split_gated_and_hostile_names(tmp_path, capsys) -> None:
    assert _run(tmp_path, "files", "hf.co/acme/Qwen3-32B-GGUF") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "3 parts" in out and "3.00 kB" in out
    assert "gated" in out
    assert "mmproj: none" in out
    assert "evil-Q8_0.gguf" in out
    assert "skipped 1 unsafe path" in out


def test_files_json(tmp_path, capsys) -> None:
    assert _run(tmp_path, "files", "acme/Qwen3-32B-GGUF", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    split = next(q for q in data["quants"] if q["quant"] == "Q4_K_M")
    assert split["part_count"] == 3 and split["complete"] and split["total_size"] == 3000
    assert data["mmprojs"] == []
    assert data["skipped"][0]["path"] == "../../escape-Q2_K.gguf"


def test_errors_are_one_line_exit_1(tmp_path, capsys) -> None:
    assert _run(tmp_path, "files", "acme/Missing-GGUF") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("gguf-tui: Hub repository acme/Missing-GGUF not found")


def test_bad_repo_argument(tmp_path, capsys) -> None:
    assert _run(tmp_path, "files", "acme/Qwen3-8B-GGUF:Q4_K_M") == 2  # a usage error
    assert "takes a repo" in capsys.readouterr().err
