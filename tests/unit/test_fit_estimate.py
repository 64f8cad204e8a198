"""Memory estimates from real GGUF files: weights from the tensor table, KV by llama.cpp's model."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from gguf import GGUFReader

from gguf_tui.fit.estimate import ModelFiles, estimate
from gguf_tui.fit.shape import cache_type
from gguf_tui.gguf import read_gguf
from tests.helpers.fitgen import make_arch_gguf

F16 = 2


def _model(path: Path) -> ModelFiles:
    return ModelFiles(parts=(read_gguf(path),), file_bytes=path.stat().st_size)


def _tensor_table_bytes(path: Path) -> int:
    return sum(int(t.n_bytes) for t in GGUFReader(path).tensors)


def test_llama_gqa_kv_and_weights(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "llama.gguf", "llama",
        {"attention.head_count": 8, "attention.head_count_kv": 2, "context_length": 8192},
        n_layer=4, n_embd=256,
    )  # fmt: skip
    result = estimate(_model(path), 4096)
    head_dim = 256 // 8
    per_token_layer = 2 * (head_dim * 2) * F16  # K and V, 2 KV heads
    assert result.kv_bytes == 4 * 4096 * per_token_layer
    assert result.weight_bytes == _tensor_table_bytes(path)
    assert len(result.layer_weight_bytes) == 4 and result.layer_weight_bytes[0] > 0
    assert result.total_bytes == result.weight_bytes + result.kv_bytes + result.overhead_bytes


def test_cache_types_use_ggml_block_sizes(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "llama.gguf", "llama",
        {"attention.head_count": 8, "attention.head_count_kv": 2}, n_layer=4, n_embd=256,
    )  # fmt: skip
    elements = 32 * 2  # per K (and per V) row
    q8 = estimate(_model(path), 1024, cache="q8_0")
    q4 = estimate(_model(path), 1024, cache="q4_0")
    assert q8.kv_bytes == 4 * 1024 * 2 * (elements // 32 * 34)
    assert q4.kv_bytes == 4 * 1024 * 2 * (elements // 32 * 18)
    with pytest.raises(ValueError, match="unknown cache type"):
        cache_type("q3_z")


def test_context_is_padded_like_llama_cpp(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "llama.gguf", "llama",
        {"attention.head_count": 8, "attention.head_count_kv": 2}, n_layer=2, n_embd=256,
    )  # fmt: skip
    assert estimate(_model(path), 1000).kv_bytes == estimate(_model(path), 1024).kv_bytes


def test_qwen3_explicit_head_lengths_and_per_layer_heads(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "qwen3.gguf", "qwen3",
        {
            "attention.head_count": 16,
            "attention.head_count_kv": [4, 2, 4, 2],
            "attention.key_length": 128,
            "attention.value_length": 96,
            "context_length": 40960,
        },
        n_layer=4, n_embd=256,
    )  # fmt: skip
    result = estimate(_model(path), 2048)
    expected = sum(2048 * (128 * heads + 96 * heads) * F16 for heads in (4, 2, 4, 2))
    assert result.kv_bytes == expected
    assert result.weight_bytes == _tensor_table_bytes(path)
    assert estimate(_model(path)).n_ctx == 8192  # default: 8k, below the trained 40k


def test_qwen2_per_layer_array_longer_than_32_layers_is_kept(tmp_path: Path) -> None:
    heads = [4 if i % 3 else 2 for i in range(48)]
    [path] = make_arch_gguf(
        tmp_path / "qwen2.gguf", "qwen2",
        {"attention.head_count": 8, "attention.head_count_kv": heads}, n_layer=48, n_embd=64,
        tokens=3000,
    )  # fmt: skip
    result = estimate(_model(path), 256)
    assert result.ok, result.error
    assert result.kv_bytes == sum(256 * 2 * 8 * h * F16 for h in heads)
    assert result.shape is not None and result.shape.n_vocab == 3000


def test_gemma2_sliding_window_layers_are_capped(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "gemma2.gguf", "gemma2",
        {
            "attention.head_count": 8, "attention.head_count_kv": 4,
            "attention.key_length": 64, "attention.value_length": 64,
            "attention.sliding_window": 512,
        },
        n_layer=4, n_embd=256,
    )  # fmt: skip
    per_cell = 2 * 64 * 4 * F16
    window_cells = 1024  # pad(512 + n_ubatch 512, 256)
    result = estimate(_model(path), 8192)
    # gemma2: every other layer (0, 2) uses the window, 1 and 3 are global
    assert result.kv_layer_bytes == [window_cells * per_cell, 8192 * per_cell] * 2
    small = estimate(_model(path), 512)
    assert small.kv_bytes == 4 * 512 * per_cell  # a context below the window caps nothing


def test_gemma3_five_local_layers_to_one_global(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "gemma3.gguf", "gemma3",
        {
            "attention.head_count": 4, "attention.head_count_kv": 1,
            "attention.key_length": 256, "attention.value_length": 256,
            "attention.sliding_window": 1024,
        },
        n_layer=12, n_embd=128,
    )  # fmt: skip
    per_cell = 2 * 256 * F16
    window_cells = 1536  # pad(1024 + 512, 256)
    result = estimate(_model(path), 32768)
    expected = [32768 * per_cell if il % 6 == 5 else window_cells * per_cell for il in range(12)]
    assert result.kv_layer_bytes == expected


def test_deepseek2_mla_caches_the_latent_only(tmp_path: Path) -> None:
    kv_lora_rank, rope = 512, 64
    [path] = make_arch_gguf(
        tmp_path / "dsv2.gguf", "deepseek2",
        {
            "attention.head_count": 16, "attention.head_count_kv": 1,
            "attention.key_length": kv_lora_rank + rope, "attention.value_length": kv_lora_rank,
            "attention.key_length_mla": 192, "attention.value_length_mla": 128,
            "attention.kv_lora_rank": kv_lora_rank, "rope.dimension_count": rope,
        },
        n_layer=3, n_embd=256,
    )  # fmt: skip
    result = estimate(_model(path), 4096)
    assert result.shape is not None and result.shape.kind == "mla"
    assert result.kv_bytes == 3 * 4096 * (kv_lora_rank + rope) * F16  # K only, no V


def test_mamba_state_is_fixed_whatever_the_context(tmp_path: Path) -> None:
    d_conv, d_inner, d_state = 4, 512, 16
    [path] = make_arch_gguf(
        tmp_path / "mamba.gguf", "mamba",
        {"ssm.conv_kernel": d_conv, "ssm.inner_size": d_inner, "ssm.state_size": d_state,
         "ssm.time_step_rank": 16},
        n_layer=4, n_embd=256,
    )  # fmt: skip
    state = ((d_conv - 1) * d_inner + d_state * d_inner) * 4  # F32
    assert estimate(_model(path), 1024).kv_bytes == 4 * state
    assert estimate(_model(path), 131072).kv_bytes == 4 * state


def test_mamba2_state_counts_groups(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "mamba2.gguf", "mamba2",
        {"ssm.conv_kernel": 4, "ssm.inner_size": 512, "ssm.state_size": 128,
         "ssm.group_count": 2, "ssm.time_step_rank": 8},
        n_layer=2, n_embd=256,
    )  # fmt: skip
    state = (3 * (512 + 2 * 2 * 128) + 128 * 512) * 4
    assert estimate(_model(path), 4096).kv_bytes == 2 * state


def test_jamba_hybrid_attention_and_ssm_layers(tmp_path: Path) -> None:
    heads = [0, 0, 0, 2, 0, 0, 0, 2]
    [path] = make_arch_gguf(
        tmp_path / "jamba.gguf", "jamba",
        {"attention.head_count": [8 if h else 0 for h in heads], "attention.head_count_kv": heads,
         "ssm.conv_kernel": 4, "ssm.inner_size": 512, "ssm.state_size": 16,
         "ssm.time_step_rank": 16},
        n_layer=8, n_embd=256,
    )  # fmt: skip
    state = (3 * 512 + 16 * 512) * 4
    attention = 2048 * 2 * 32 * 2 * F16
    result = estimate(_model(path), 2048)
    assert result.kv_layer_bytes == [attention if h else state for h in heads]


def test_rwkv6_state(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "rwkv6.gguf", "rwkv6", {"wkv.head_size": 64}, n_layer=2, n_embd=256,
    )  # fmt: skip
    assert estimate(_model(path), 4096).kv_bytes == 2 * (2 * 256 + 256 * 64) * 4


def test_unknown_architecture_gives_weights_and_kv_unknown(tmp_path: Path) -> None:
    [path] = make_arch_gguf(tmp_path / "x.gguf", "made-up-arch", {"attention.head_count": 4},
                          n_layer=2)  # fmt: skip
    result = estimate(_model(path), 4096)
    assert result.ok and not result.kv_known
    assert result.kv_bytes is None and result.total_bytes is None
    assert result.weight_bytes == _tensor_table_bytes(path)


def test_split_parts_and_mmproj_are_summed(tmp_path: Path) -> None:
    from tests.helpers.ggufgen import make_mmproj_gguf

    parts = make_arch_gguf(
        tmp_path / "split" / "m.gguf", "llama", {"attention.head_count": 4}, n_layer=3,
        split_max_tensors=4,
    )  # fmt: skip
    assert len(parts) > 1
    mmproj = make_mmproj_gguf(tmp_path / "mmproj.gguf")
    model = ModelFiles(
        parts=tuple(read_gguf(p) for p in parts), mmproj=read_gguf(mmproj),
        file_bytes=sum(p.stat().st_size for p in [*parts, mmproj]),
    )  # fmt: skip
    result = estimate(model, 512)
    assert result.weight_bytes == sum(_tensor_table_bytes(p) for p in [*parts, mmproj])
    assert result.mmproj_bytes == _tensor_table_bytes(mmproj)


@pytest.mark.parametrize(
    "hparams, words",
    [
        ({"attention.head_count": 8, "attention.head_count_kv": 4_000_000_000}, "cannot be real"),
        ({"attention.head_count": 8, "attention.key_length": -5}, "cannot be real"),
        ({"attention.head_count": 8, "block_count": 100_000}, "cannot be real"),
        ({"attention.head_count": 0}, "0 in every layer"),
        ({"attention.head_count": 8, "attention.head_count_kv": [2, 2]}, "values for 4 layers"),
        ({"attention.head_count": 8, "attention.head_count_kv": "many"}, "not a whole number"),
        ({"attention.head_count": 16384, "attention.key_length": 65536}, "per token"),
    ],
)
def test_a_lying_header_cannot_be_estimated(tmp_path: Path, hparams: dict, words: str) -> None:
    [path] = make_arch_gguf(tmp_path / "lie.gguf", "llama", hparams, n_layer=4, n_embd=256)
    result = estimate(_model(path), 4096)
    assert not result.ok and words in (result.error or "")
    assert result.total_bytes is None and result.to_json()["error"]


def test_a_tensor_table_larger_than_the_file_cannot_be_estimated(tmp_path: Path) -> None:
    """One tensor claiming 2^62 bytes of data in a file of a few hundred bytes."""
    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kvs = [("general.architecture", 8, string("llama")), ("llama.block_count", 4, struct.pack("<I", 1)),
           ("llama.embedding_length", 4, struct.pack("<I", 64)),
           ("llama.attention.head_count", 4, struct.pack("<I", 4))]  # fmt: skip
    body = b"".join(string(k) + struct.pack("<I", t) + v for k, t, v in kvs)
    tensor = string("blk.0.attn_q.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 1 << 40, 1 << 20)
    tensor += struct.pack("<IQ", 0, 0)
    data = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)) + body + tensor
    path = tmp_path / "liar.gguf"
    path.write_bytes(data + b"\0" * (-len(data) % 32 + 64))
    result = estimate(_model(path), 4096)
    assert not result.ok and "more than the files hold" in (result.error or "")


def test_gemma2_without_a_window_key_uses_llama_cpps_4096(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "gemma2.gguf", "gemma2",
        {"attention.head_count": 4, "attention.head_count_kv": 1, "attention.key_length": 64,
         "attention.value_length": 64},
        n_layer=2, n_embd=256,
    )  # fmt: skip
    per_cell = 2 * 64 * F16
    assert estimate(_model(path), 16384).kv_layer_bytes == [4608 * per_cell, 16384 * per_cell]


def test_dense_first_pattern_and_a_pattern_from_the_header(tmp_path: Path) -> None:
    base = {"attention.head_count": 4, "attention.head_count_kv": 1, "attention.key_length": 64,
            "attention.value_length": 64, "attention.sliding_window": 256}  # fmt: skip
    per_cell = 2 * 64 * F16
    window, full = 768 * per_cell, 4096 * per_cell  # pad(256 + 512, 256) = 768
    [dense_first] = make_arch_gguf(tmp_path / "c.gguf", "cohere2moe", base, n_layer=5, n_embd=256)
    assert estimate(_model(dense_first), 4096).kv_layer_bytes == [full, window, window, window, full]
    [stated] = make_arch_gguf(
        tmp_path / "s.gguf", "gemma3",
        {**base, "attention.sliding_window_pattern": [True, False, True]}, n_layer=3, n_embd=256,
    )  # fmt: skip
    assert estimate(_model(stated), 4096).kv_layer_bytes == [window, full, window]


def test_nemotron_h_mlp_only_layers_hold_no_state(tmp_path: Path) -> None:
    heads = [0, 2, 0, 0]
    n_ff = [0, 0, 512, 0]  # layer 2 is MLP-only; 0 and 3 are SSM layers
    [path] = make_arch_gguf(
        tmp_path / "nh.gguf", "nemotron_h",
        {"attention.head_count": [0, 8, 0, 0], "attention.head_count_kv": heads,
         "feed_forward_length": n_ff, "ssm.conv_kernel": 4, "ssm.inner_size": 512,
         "ssm.state_size": 16, "ssm.group_count": 1, "ssm.time_step_rank": 8},
        n_layer=4, n_embd=256,
    )  # fmt: skip
    state = (3 * (512 + 2 * 16) + 16 * 512) * 4
    attention = 1024 * 2 * 32 * 2 * F16
    assert estimate(_model(path), 1024).kv_layer_bytes == [state, attention, 0, state]


def test_a_tied_output_puts_the_embeddings_on_the_gpu(tmp_path: Path) -> None:
    hparams = {"attention.head_count": 8, "attention.head_count_kv": 2}
    [tied] = make_arch_gguf(tmp_path / "t.gguf", "llama", hparams, n_layer=2, tied_output=True)
    [own] = make_arch_gguf(tmp_path / "o.gguf", "llama", hparams, n_layer=2)
    tied_result, own_result = estimate(_model(tied), 512), estimate(_model(own), 512)
    assert tied_result.output_tied and not own_result.output_tied
    assert tied_result.gpu_whole_bytes == tied_result.other_weight_bytes
    assert own_result.gpu_whole_bytes == own_result.other_weight_bytes - own_result.input_weight_bytes


def test_overhead_is_logits_masks_and_activations(tmp_path: Path) -> None:
    [path] = make_arch_gguf(
        tmp_path / "l.gguf", "llama",
        {"attention.head_count": 8, "attention.head_count_kv": 2, "feed_forward_length": 512},
        n_layer=2, n_embd=256, tokens=1000,
    )  # fmt: skip
    small, big = estimate(_model(path), 1024), estimate(_model(path), 9216)
    ubatch = 512
    assert small.overhead_bytes == ubatch * (4 * 1000 + 2 * 1024 + 4 * (4 * 256 + 2 * 512))
    assert big.overhead_bytes - small.overhead_bytes == ubatch * 2 * (9216 - 1024)  # F16 mask
