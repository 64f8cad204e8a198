"""Verdicts: an estimate placed on stated devices, and the largest context that fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from gguf_tui.fit.devices import Device, Inventory, parse_stated
from gguf_tui.fit.estimate import GPU_RESERVE_BYTES, ModelFiles, at_context, estimate
from gguf_tui.fit.verdict import GPU, NO_FIT, PARTIAL, RAM, UNKNOWN, judge, short_label
from gguf_tui.gguf import read_gguf
from tests.helpers.fitgen import make_arch_gguf

MIB = 1 << 20


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory):
    [path] = make_arch_gguf(
        tmp_path_factory.mktemp("fit") / "llama.gguf", "llama",
        {"attention.head_count": 8, "attention.head_count_kv": 8, "context_length": 65536},
        n_layer=8, n_embd=256, tokens=1000,
    )  # fmt: skip
    return estimate(ModelFiles(parts=(read_gguf(path),), file_bytes=path.stat().st_size), 4096)


def _box(*gpu_bytes: int, ram: int = 64 << 30) -> Inventory:
    gpus = [Device("gpu", f"g{i}", b, b, i, "stated") for i, b in enumerate(gpu_bytes)]
    return Inventory(gpus=gpus, ram=Device("ram", "RAM", ram, ram, None, "system"))


def _need(result) -> int:
    return result.total_bytes + GPU_RESERVE_BYTES


def test_fits_on_one_gpu(llama) -> None:
    verdict = judge(llama, _box(_need(llama) + MIB))
    assert verdict.status == GPU and verdict.gpus_used == [0]
    assert short_label(verdict) == "✓ GPU" and verdict.reason == "fits on GPU0"
    # the token embeddings stay in RAM, as llama.cpp keeps its input layer on the CPU
    assert llama.input_weight_bytes > 0 and not llama.output_tied
    assert verdict.per_device["GPU0"] == _need(llama) - llama.input_weight_bytes
    assert verdict.per_device["RAM"] == llama.input_weight_bytes


def test_partial_offload_counts_the_layers_that_fit(llama) -> None:
    per_layer = llama.layer_weight_bytes[0] + llama.kv_layer_bytes[0]
    room = 3 * per_layer + per_layer // 2
    verdict = judge(llama, _box(room + GPU_RESERVE_BYTES + llama.compute_bytes))
    assert verdict.status == PARTIAL and verdict.gpu_layers == 3
    assert short_label(verdict) == "◐ 3/8"


def test_several_gpus_share_the_layers(llama) -> None:
    per_layer = llama.layer_weight_bytes[0] + llama.kv_layer_bytes[0]
    fixed = GPU_RESERVE_BYTES + llama.compute_bytes
    first = 5 * per_layer + fixed + 1
    second = 3 * per_layer + llama.other_weight_bytes + fixed + 1
    verdict = judge(llama, _box(first, second))
    assert verdict.status == GPU and verdict.gpus_used == [0, 1]


def test_ram_only_and_no_fit(llama) -> None:
    assert judge(llama, _box()).status == RAM
    assert judge(llama, _box(ram=llama.total_bytes + MIB)).status == RAM
    verdict = judge(llama, _box(ram=MIB))
    assert verdict.status == NO_FIT and short_label(verdict) == "✗ no fit"


def test_largest_context_that_fits(llama) -> None:
    room = _need(at_context(llama, 16384))
    verdict = judge(llama, _box(room))
    assert verdict.max_context == 16384
    assert judge(at_context(llama, 16640), _box(room)).status != GPU
    assert judge(llama, _box(1 << 50)).max_context == 65536  # capped at the trained context


def test_context_changes_the_verdict(llama) -> None:
    box = _box(_need(at_context(llama, 8192)))
    assert judge(at_context(llama, 8192), box).status == GPU
    assert judge(at_context(llama, 32768), box).status == PARTIAL


def test_cannot_estimate_and_kv_unknown_labels(tmp_path: Path) -> None:
    [lie] = make_arch_gguf(tmp_path / "lie.gguf", "llama",
                           {"attention.head_count": 8, "block_count": 999_999}, n_layer=2)  # fmt: skip
    result = estimate(ModelFiles(parts=(read_gguf(lie),)), 4096)
    verdict = judge(result, _box(1 << 40))
    assert verdict.status == UNKNOWN and short_label(verdict) == "? n/a"
    assert verdict.reason.startswith("cannot estimate: ")
    [odd] = make_arch_gguf(tmp_path / "odd.gguf", "odd-arch", {}, n_layer=2)
    unknown = judge(estimate(ModelFiles(parts=(read_gguf(odd),)), 4096), _box(1 << 40))
    assert unknown.status == GPU and short_label(unknown) == "? GPU, KV?"
    assert unknown.max_context is None


def test_stated_box_round_trip() -> None:
    inventory = Inventory(gpus=parse_stated("24G,24G"))
    assert [gpu.label for gpu in inventory.gpus] == ["GPU0", "GPU1"]
