"""`gguf-tui gpus`, `files REPO --fit` against the Hub imitation, `info MODEL --fit` on a store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gguf_tui.cli import main
from gguf_tui.fit.estimate import ModelFiles, estimate
from gguf_tui.gguf import read_gguf
from tests.conftest import REPO_ROOT
from tests.helpers.fitgen import make_arch_gguf
from tests.helpers.ggufgen import add_managed_model, make_mmproj_gguf
from tests.helpers.hubsim import HubSim

QWEN = {"attention.head_count": 8, "attention.head_count_kv": 2, "context_length": 32768}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from gguf import GGMLQuantizationType as T

    folder = tmp_path_factory.mktemp("fitmodels")
    q8 = make_arch_gguf(folder / "Tiny-Q8_0.gguf", "qwen2", QWEN, n_layer=4, n_embd=256,
                        tokens=2000)[0]  # fmt: skip
    f16 = make_arch_gguf(folder / "Tiny-F16.gguf", "qwen2", QWEN, n_layer=4, n_embd=256,
                         tokens=2000, matrix_type=T.F16)[0]  # fmt: skip
    parts = make_arch_gguf(folder / "split" / "Tiny-Q4_0.gguf", "qwen2", QWEN, n_layer=4,
                           n_embd=256, matrix_type=T.Q4_0, split_max_tensors=5)  # fmt: skip
    lie = make_arch_gguf(folder / "Tiny-Q2_K.gguf", "qwen2",
                         {**QWEN, "attention.head_count_kv": 4_000_000}, n_layer=4, n_embd=256)[0]
    return {"Q8_0": q8, "F16": f16, "Q2_K": lie, "mmproj": make_mmproj_gguf(folder / "mm.gguf"),
            **{f"part{i + 1}": p for i, p in enumerate(parts)}}  # fmt: skip


@pytest.fixture(scope="module")
def hub(models: dict[str, Path]):
    sim = HubSim()
    parts = [k for k in models if k.startswith("part")]
    files = {
        "Tiny-Q8_0.gguf": models["Q8_0"],
        "Tiny-F16.gguf": models["F16"],
        "Tiny-Q2_K.gguf": models["Q2_K"],
        "mmproj-Tiny-F16.gguf": models["mmproj"],
    } | {f"Tiny-Q4_0-{i + 1:05d}-of-{len(parts):05d}.gguf": models[k] for i, k in enumerate(parts)}
    sim.add_repo("acme/Tiny-GGUF", files)
    # a split quant with its second part missing from the repo
    sim.add_repo("acme/Broken-GGUF", {
        "Tiny-Q4_0-00001-of-00003.gguf": models["part1"],
        "Tiny-Q4_0-00003-of-00003.gguf": models["part3"],
        "Tiny-Q8_0.gguf": models["Q8_0"],
    })  # fmt: skip
    with sim:
        yield sim


@pytest.fixture
def hub_env(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("GGUF_TUI_GPUS", "24G,24G")
    return hub


def _expected_total(models: dict[str, Path], quant: str, n_ctx: int) -> int:
    model = ModelFiles(parts=(read_gguf(models[quant]),), mmproj=read_gguf(models["mmproj"]))
    result = estimate(model, n_ctx)
    assert result.total_bytes is not None
    return result.total_bytes


def test_files_fit_json(hub_env, models, tmp_path, capsys) -> None:
    code = main(["--store", str(tmp_path / "s"), "files", "acme/Tiny-GGUF", "--fit", "--ctx",
                 "4096", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    fits = {g["quant"]: g["fit"] for g in out["quants"]}
    assert fits["Q8_0"]["status"] == "gpu" and fits["Q8_0"]["label"] == "✓ GPU"
    assert fits["Q8_0"]["estimate"]["total_bytes"] == _expected_total(models, "Q8_0", 4096)
    assert fits["Q8_0"]["estimate"]["n_ctx"] == 4096
    assert fits["Q8_0"]["max_context"] == 32768
    assert fits["Q2_K"]["status"] == "unknown" and "cannot be real" in fits["Q2_K"]["reason"]
    split_weights = sum(
        read_gguf(models[k]).tensor_bytes.total for k in models if k.startswith("part")
    ) + read_gguf(models["mmproj"]).tensor_bytes.total
    assert fits["Q4_0"]["estimate"]["weights_bytes"] == split_weights
    assert out["devices"]["sources"][0] == "GGUF_TUI_GPUS"


def test_files_fit_table_and_header_cache(hub_env, models, tmp_path, capsys) -> None:
    hub_env.clear_requests()
    code = main(["--store", str(tmp_path / "s"), "files", "acme/Tiny-GGUF", "--fit"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["QUANT", "FIT", "NEEDS"])
    rows = {line.split()[0]: line for line in lines[header + 1 : header + 5]}
    assert "✓ GPU" in rows["Q8_0"] and "? n/a" in rows["Q2_K"]
    assert "fit at context 8192 with f16 KV cache (mmproj included)" in out
    assert "GPU0  stated 24G" in out
    # the mmproj is shared by every quant's estimate but read once
    resolves = [r for r in hub_env.requests if r.host == "api" and "/resolve/" in r.path_qs]
    assert sum("mmproj" in r.path_qs for r in resolves) == 1
    assert len(resolves) == len(models)  # one per file (every quant, part, the mmproj)


def test_files_fit_on_a_small_gpu_is_partial_or_ram(hub_env, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("GGUF_TUI_GPUS", "275M")  # 256M runtime reserve, compute, a few layers
    code = main(["--store", str(tmp_path / "s"), "files", "acme/Tiny-GGUF", "--fit", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    statuses = {g["quant"]: g["fit"]["status"] for g in out["quants"]}
    assert statuses["Q8_0"] == "partial"
    assert statuses["F16"] in ("partial", "ram")


def _gguf_tui(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gguf_tui", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
    )  # fmt: skip


def test_gpus_command(tmp_path: Path) -> None:
    stated = _gguf_tui("gpus", env={"GGUF_TUI_GPUS": "24G,48G"})
    assert stated.returncode == 0, stated.stderr
    assert stated.stdout.splitlines()[:2] == [
        "GPU0  stated 24G  25.8 GB free of 25.8 GB  (stated)",
        "GPU1  stated 48G  51.5 GB free of 51.5 GB  (stated)",
    ]
    as_json = json.loads(_gguf_tui("gpus", "--json", env={"GGUF_TUI_GPUS": "24G"}).stdout)
    assert as_json["gpus"][0]["total_bytes"] == 24 << 30
    assert as_json["sources"][0] == "GGUF_TUI_GPUS"
    bad = _gguf_tui("gpus", env={"GGUF_TUI_GPUS": "lots"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_gpus_probe_on_this_box_never_fails(tmp_path: Path) -> None:
    """Whatever this box has (here: no NVIDIA driver, or one), the probe answers with exit 0."""
    probe = _gguf_tui("gpus", env={"PATH": str(tmp_path)})  # no nvidia-smi on PATH
    assert probe.returncode == 0, probe.stderr
    assert "Traceback" not in probe.stderr
    assert probe.stdout.rstrip().splitlines()[-1].startswith("source: ")


async def test_info_fit_on_a_real_store(cli, store, models, monkeypatch) -> None:
    monkeypatch.setenv("GGUF_TUI_GPUS", "24G")
    add_managed_model(
        store, "acme/Tiny-GGUF:Q8_0",
        {"acme/Tiny-GGUF/Tiny-Q8_0.gguf": models["Q8_0"],
         "acme/Tiny-GGUF/mmproj-Tiny-F16.gguf": models["mmproj"]},
        roles={"acme/Tiny-GGUF/mmproj-Tiny-F16.gguf": "mmproj"},
    )  # fmt: skip
    text = await cli("info", "acme/Tiny-GGUF:Q8_0", "--fit", "--ctx", "16384")
    assert text.code == 0, text.err
    assert "fit       at context 16384 with f16 KV cache" in text.out
    assert "  verdict   ✓ GPU: fits on GPU0" in text.out
    as_json = await cli("info", "acme/Tiny-GGUF:Q8_0", "--fit", "--json")
    data = json.loads(as_json.out)
    assert data["fit"]["estimate"]["total_bytes"] == _expected_total(models, "Q8_0", 8192)
    plain_info = json.loads((await cli("info", "acme/Tiny-GGUF:Q8_0", "--json")).out)
    assert "fit" not in plain_info
    ctx_only = await cli("info", "acme/Tiny-GGUF:Q8_0", "--ctx", "4096")  # --ctx implies --fit
    assert "fit       at context 4096" in ctx_only.out


def test_files_fit_incomplete_split_cannot_be_estimated(hub_env, tmp_path, capsys) -> None:
    code = main(["--store", str(tmp_path / "s"), "files", "acme/Broken-GGUF", "--fit", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    fits = {g["quant"]: g["fit"] for g in out["quants"]}
    assert fits["Q4_0"]["label"] == "? n/a" and "part 2 missing" in fits["Q4_0"]["reason"]
    assert fits["Q8_0"]["status"] == "gpu"
