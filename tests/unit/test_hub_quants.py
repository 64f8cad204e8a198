"""Quant names, split parts and grouping of a repo's GGUF files (pure functions)."""

from __future__ import annotations

import pytest

from gguf_tui.hub.models import RepoFiles
from gguf_tui.hub.quants import (
    annotate,
    assign_local_names,
    closest_quant,
    group_files,
    parse_quant,
    parse_split,
    pick_mmproj,
)


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen3-8B-Q4_K_M.gguf", "Q4_K_M"),
        ("model.q4_k_m.gguf", "Q4_K_M"),
        ("Q4_K_M/model-Q4_K_M-00001-of-00003.gguf", "Q4_K_M"),
        ("Q5_K_S/model-00001-of-00002.gguf", "Q5_K_S"),  # quant only in the folder
        ("llama-2-7b.Q2_K.gguf", "Q2_K"),
        ("x-Q3_K_S.gguf", "Q3_K_S"),
        ("x-Q3_K_L.gguf", "Q3_K_L"),
        ("x-Q4_0.gguf", "Q4_0"),
        ("x-Q4_K_S.gguf", "Q4_K_S"),
        ("x-Q6_K.gguf", "Q6_K"),
        ("x-q8_0.gguf", "Q8_0"),
        ("x-f16.gguf", "F16"),
        ("x-fp16.gguf", "F16"),
        ("x-BF16.gguf", "BF16"),
        ("x-F32.gguf", "F32"),
        ("x-IQ1_S.gguf", "IQ1_S"),
        ("x-IQ2_XXS.gguf", "IQ2_XXS"),
        ("x-IQ3_M.gguf", "IQ3_M"),
        ("x-IQ4_XS.gguf", "IQ4_XS"),
        ("x-IQ4_NL.gguf", "IQ4_NL"),
        ("x-TQ1_0.gguf", "TQ1_0"),
        ("x-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("Qwen3-8B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf", "Q6_K_L"),
        ("ggml-model.gguf", None),
        ("Q4K.gguf", None),
    ],
)
def test_parse_quant(name: str, quant: str | None) -> None:
    assert parse_quant(name) == quant


def test_parse_split() -> None:
    assert parse_split("m-Q4_K_M-00002-of-00003.gguf") == (2, 3)
    assert parse_split("m-Q4_K_M.gguf") is None
    assert parse_split("m-00004-of-00003.gguf") is None


def _files(spec: dict[str, int]):
    return assign_local_names(
        [annotate(path, size, "a" * 64, lfs=True) for path, size in spec.items()]
    )


def test_grouping_split_single_and_mmproj() -> None:
    files = _files(
        {
            "Q4_K_M/M-Q4_K_M-00001-of-00003.gguf": 100,
            "Q4_K_M/M-Q4_K_M-00002-of-00003.gguf": 100,
            "Q4_K_M/M-Q4_K_M-00003-of-00003.gguf": 50,
            "M-Q8_0.gguf": 400,
            "M-Q2_K.gguf": 90,
            "mmproj-M-f16.gguf": 30,
            "ggml-model.gguf": 10,
        }
    )
    quants, other = group_files(files)
    assert [g.quant for g in quants] == ["Q2_K", "Q4_K_M", "Q8_0"]  # ordered by size
    split = quants[1]
    assert split.part_count == 3
    assert split.total_size == 250
    assert split.complete
    assert [f.part for f in split.files] == [1, 2, 3]
    assert split.name == "M-Q4_K_M-00001-of-00003.gguf"
    assert all(g.quant != "F16" for g in quants)  # the mmproj is not a quant
    assert [g.name for g in other] == ["ggml-model.gguf"]
    assert [f.local_name for f in split.files][0] == "M-Q4_K_M-00001-of-00003.gguf"


def test_split_with_missing_part_is_incomplete() -> None:
    quants, _ = group_files(
        _files({"M-Q4_K_M-00001-of-00003.gguf": 10, "M-Q4_K_M-00003-of-00003.gguf": 10})
    )
    (group,) = quants
    assert not group.complete
    assert group.missing_parts == (2,)
    assert group.part_count == 3


def test_two_splits_of_different_quants_stay_apart() -> None:
    quants, _ = group_files(
        _files(
            {
                "a/M-Q4_K_M-00001-of-00002.gguf": 10,
                "a/M-Q4_K_M-00002-of-00002.gguf": 10,
                "b/M-Q8_0-00001-of-00002.gguf": 20,
                "b/M-Q8_0-00002-of-00002.gguf": 20,
            }
        )
    )
    assert [(g.quant, g.part_count, g.complete) for g in quants] == [
        ("Q4_K_M", 2, True),
        ("Q8_0", 2, True),
    ]


def test_clashing_base_names_keep_a_safe_sub_path() -> None:
    files = _files({"Q4_K_M/model.gguf": 1, "Q8_0/model.gguf": 2, "solo-Q6_K.gguf": 3})
    names = {f.path: f.local_name for f in files}
    assert names == {
        "Q4_K_M/model.gguf": "Q4_K_M/model.gguf",
        "Q8_0/model.gguf": "Q8_0/model.gguf",
        "solo-Q6_K.gguf": "solo-Q6_K.gguf",
    }


def test_pick_mmproj_prefers_f16_then_bf16_then_f32() -> None:
    files = _files({"mmproj-F32.gguf": 4, "mmproj-BF16.gguf": 2, "mmproj-F16.gguf": 2})
    assert pick_mmproj(files).path == "mmproj-F16.gguf"
    assert pick_mmproj(files[:2]).path == "mmproj-BF16.gguf"
    assert pick_mmproj(files[:1]).path == "mmproj-F32.gguf"
    assert pick_mmproj(files, prefer="F32").path == "mmproj-F32.gguf"
    only = _files({"mmproj-model.gguf": 1})
    assert pick_mmproj(only).path == "mmproj-model.gguf"
    assert pick_mmproj([]) is None


def test_closest_quant() -> None:
    assert closest_quant("Q4_K_M", ["Q2_K", "Q4_K_S", "Q8_0"]) == "Q4_K_S"
    assert closest_quant("Q4_K_M", ["Q5_K_M", "Q8_0"]) == "Q5_K_M"
    assert closest_quant("Q4_K_M", []) is None


def test_repo_files_json_is_plain() -> None:
    quants, other = group_files(_files({"M-Q4_K_M.gguf": 5}))
    repo_files = RepoFiles(repo="o/r", revision="main", commit=None, quants=quants, other=other)
    data = repo_files.to_json()
    assert data["quants"][0]["quant"] == "Q4_K_M"
    assert data["quants"][0]["files"][0]["sha256"] == "a" * 64
