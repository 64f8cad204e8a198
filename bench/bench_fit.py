"""Accuracy of `gguf_tui.fit` against llama.cpp itself: KV cache, weights and total.

    python bench/bench_fit.py [--contexts 512,4096,16384]

Needs the `llama-cpp-python` package (it compiles llama.cpp from source, so it is a bench
extra, never a test dependency): e.g. in a separate venv,
`CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install llama-cpp-python gguf numpy`,
then run this file with that venv's python (the repo is put on sys.path).

For each architecture it writes a small but complete GGUF (every tensor llama.cpp's loader asks
for, random F16/F32 data, a byte-level SPM vocabulary), loads it on the CPU in a subprocess at
each context length with llama.cpp's default batch sizes, and reads the buffer sizes llama.cpp
logs (`model buffer size`, `llama_kv_cache: size`, the recurrent state `size`, `compute buffer
size`). It prints them next to our estimate and the relative difference. The context uses
llama.cpp's defaults except `swa_full = false`, which is what llama-server and llama-cli use.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_EMBD = 256
N_FF = 512
N_HEAD = 8
N_VOCAB = 260  # 3 control tokens + 256 byte tokens + 1 padding

# Per-architecture: hyper-parameters (without the `<arch>.` prefix) and the tensor list
# (name -> numpy-order shape, row length last) that llama.cpp's loader requires.


def _attn(il: int, n_kv: int, head: int, *, norms: bool = False, post: bool = False,
          bias: bool = False) -> dict:  # fmt: skip
    t = {
        f"blk.{il}.attn_norm.weight": (N_EMBD,),
        f"blk.{il}.attn_q.weight": (N_HEAD * head, N_EMBD),
        f"blk.{il}.attn_k.weight": (n_kv * head, N_EMBD),
        f"blk.{il}.attn_v.weight": (n_kv * head, N_EMBD),
        f"blk.{il}.attn_output.weight": (N_EMBD, N_HEAD * head),
        f"blk.{il}.ffn_norm.weight": (N_EMBD,),
        f"blk.{il}.ffn_gate.weight": (N_FF, N_EMBD),
        f"blk.{il}.ffn_up.weight": (N_FF, N_EMBD),
        f"blk.{il}.ffn_down.weight": (N_EMBD, N_FF),
    }
    if bias:
        t |= {f"blk.{il}.attn_q.bias": (N_HEAD * head,), f"blk.{il}.attn_k.bias": (n_kv * head,),
              f"blk.{il}.attn_v.bias": (n_kv * head,)}  # fmt: skip
    if norms:
        t |= {f"blk.{il}.attn_q_norm.weight": (head,), f"blk.{il}.attn_k_norm.weight": (head,)}
    if post:
        t |= {f"blk.{il}.post_attention_norm.weight": (N_EMBD,),
              f"blk.{il}.post_ffw_norm.weight": (N_EMBD,)}  # fmt: skip
    return t


def _common(output: bool = True) -> dict:
    t = {"token_embd.weight": (N_VOCAB, N_EMBD), "output_norm.weight": (N_EMBD,)}
    if output:
        t["output.weight"] = (N_VOCAB, N_EMBD)
    return t


def _transformer(arch: str, n_layer: int, n_kv: int, head: int, extra: dict, **flags) -> tuple:
    tensors = _common(output=arch not in ("gemma2", "gemma3"))
    for il in range(n_layer):
        tensors |= _attn(il, n_kv, head, **flags)
    hparams = {
        "block_count": n_layer, "embedding_length": N_EMBD, "feed_forward_length": N_FF,
        "attention.head_count": N_HEAD, "attention.head_count_kv": n_kv,
        "attention.key_length": head, "attention.value_length": head,
        "attention.layer_norm_rms_epsilon": 1e-6, "context_length": 32768,
        "rope.dimension_count": head, **extra,
    }  # fmt: skip
    return arch, hparams, tensors


def _mamba(n_layer: int) -> tuple:
    d_inner, d_state, d_conv, dt_rank = 2 * N_EMBD, 16, 4, 16
    tensors = _common()
    for il in range(n_layer):
        tensors |= {
            f"blk.{il}.attn_norm.weight": (N_EMBD,),
            f"blk.{il}.ssm_in.weight": (2 * d_inner, N_EMBD),
            f"blk.{il}.ssm_conv1d.weight": (d_inner, d_conv),
            f"blk.{il}.ssm_conv1d.bias": (d_inner,),
            f"blk.{il}.ssm_x.weight": (dt_rank + 2 * d_state, d_inner),
            f"blk.{il}.ssm_dt.weight": (d_inner, dt_rank),
            f"blk.{il}.ssm_dt.bias": (d_inner,),
            f"blk.{il}.ssm_a": (d_inner, d_state),
            f"blk.{il}.ssm_d": (d_inner,),
            f"blk.{il}.ssm_out.weight": (N_EMBD, d_inner),
        }
    hparams = {
        "block_count": n_layer, "embedding_length": N_EMBD, "feed_forward_length": 0,
        "attention.head_count": 0, "attention.layer_norm_rms_epsilon": 1e-5,
        "context_length": 1 << 20, "ssm.conv_kernel": d_conv, "ssm.inner_size": d_inner,
        "ssm.state_size": d_state, "ssm.time_step_rank": dt_rank,
    }  # fmt: skip
    return "mamba", hparams, tensors


def _deepseek2(n_layer: int) -> tuple:
    """MLA as converted today: the cache holds kv_lora_rank + rope dims with one KV head."""
    kv_lora, rope, nope, v_head, n_head = 64, 32, 32, 32, 4
    tensors = _common()
    for il in range(n_layer):
        tensors |= {
            f"blk.{il}.attn_norm.weight": (N_EMBD,),
            f"blk.{il}.attn_q_a.weight": (64, N_EMBD),
            f"blk.{il}.attn_q_a_norm.weight": (64,),
            f"blk.{il}.attn_q_b.weight": (n_head * (nope + rope), 64),
            f"blk.{il}.attn_kv_a_mqa.weight": (kv_lora + rope, N_EMBD),
            f"blk.{il}.attn_kv_a_norm.weight": (kv_lora,),
            f"blk.{il}.attn_k_b.weight": (n_head, kv_lora, nope),
            f"blk.{il}.attn_v_b.weight": (n_head, v_head, kv_lora),
            f"blk.{il}.attn_output.weight": (N_EMBD, n_head * v_head),
            f"blk.{il}.ffn_norm.weight": (N_EMBD,),
            f"blk.{il}.ffn_gate.weight": (N_FF, N_EMBD),
            f"blk.{il}.ffn_up.weight": (N_FF, N_EMBD),
            f"blk.{il}.ffn_down.weight": (N_EMBD, N_FF),
        }
    hparams = {
        "block_count": n_layer, "embedding_length": N_EMBD, "feed_forward_length": N_FF,
        "attention.head_count": n_head, "attention.head_count_kv": 1,
        "attention.key_length": kv_lora + rope, "attention.value_length": kv_lora,
        "attention.key_length_mla": nope + rope, "attention.value_length_mla": v_head,
        "attention.kv_lora_rank": kv_lora, "attention.q_lora_rank": 64,
        "rope.dimension_count": rope,
        "attention.layer_norm_rms_epsilon": 1e-6, "context_length": 32768,
        "leading_dense_block_count": n_layer, "expert_count": 0, "expert_used_count": 0,
        "expert_shared_count": 0, "expert_feed_forward_length": N_FF,
        "expert_weights_scale": 1.0,
    }  # fmt: skip
    return "deepseek2", hparams, tensors


MODELS = {
    "llama (GQA)": lambda: _transformer("llama", 4, 2, 32, {}),
    "qwen2": lambda: _transformer("qwen2", 4, 2, 32, {}, bias=True),
    "qwen3": lambda: _transformer("qwen3", 4, 2, 64, {}, norms=True),
    "gemma2 (SWA)": lambda: _transformer(
        "gemma2", 4, 4, 64,
        {"attention.sliding_window": 1024, "attn_logit_softcapping": 50.0,
         "final_logit_softcapping": 30.0}, post=True,
    ),  # fmt: skip
    "gemma3 (SWA)": lambda: _transformer(
        "gemma3", 6, 2, 64, {"attention.sliding_window": 1024}, post=True, norms=True,
    ),  # fmt: skip
    "deepseek2 MLA": lambda: _deepseek2(4),
    "mamba": lambda: _mamba(4),
}


def write_model(path: Path, arch: str, hparams: dict, tensors: dict) -> None:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_name(f"bench-{arch}")
    writer.add_file_type(1)
    for key, value in hparams.items():
        name = f"{arch}.{key}"
        if isinstance(value, float):
            writer.add_float32(name, value)
        else:
            writer.add_uint32(name, value)
    writer.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁"]
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    rng = np.random.default_rng(0)
    for name, shape in tensors.items():
        data = rng.standard_normal(shape).astype(np.float32) * 0.02
        if len(shape) >= 2 and not name.endswith("ssm_a") and "conv1d" not in name:
            data = data.astype(np.float16)
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


_LOAD = r"""
import json, sys, llama_cpp
model_params = llama_cpp.llama_model_default_params()
model_params.n_gpu_layers = 0
model = llama_cpp.llama_model_load_from_file(sys.argv[1].encode(), model_params)
assert model, "model did not load"
ctx_params = llama_cpp.llama_context_default_params()
ctx_params.n_ctx = int(sys.argv[2])
# llama-server and llama-cli keep sliding-window caches at the window (common.h swa_full =
# false); the library's own default (true) sizes them to the whole context.
ctx_params.swa_full = False
ctx = llama_cpp.llama_init_from_model(model, ctx_params)
assert ctx, "context not created"
llama_cpp.llama_free(ctx)
llama_cpp.llama_model_free(model)
"""

_MIB = r"([0-9.]+) MiB"
PATTERNS = {
    "weights": re.compile(r"CPU(?:_Mapped)? model buffer size\s*=\s*" + _MIB),
    "kv": re.compile(r"llama_kv_cache(?:_unified)?(?:_iswa)?: +size\s*=\s*" + _MIB),
    "recurrent": re.compile(r"llama_memory_recurrent: +size\s*=\s*" + _MIB),
    "compute": re.compile(r"CPU compute buffer size\s*=\s*" + _MIB),
}


def llama_cpp_sizes(path: Path, n_ctx: int) -> dict[str, float]:
    """Buffer sizes (bytes) llama.cpp logs when it loads `path` at `n_ctx` on the CPU."""
    done = subprocess.run([sys.executable, "-c", _LOAD, str(path), str(n_ctx)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(log[-2000:])
    sizes: dict[str, float] = {}
    for key, pattern in PATTERNS.items():
        found = [float(m) * (1 << 20) for m in pattern.findall(log)]
        if found:
            sizes[key] = sum(found)  # the iswa cache logs the base and the SWA part
    return sizes


def ours(path: Path, n_ctx: int) -> dict[str, float]:
    from gguf_tui.fit.estimate import ModelFiles, estimate
    from gguf_tui.gguf import read_gguf

    result = estimate(ModelFiles(parts=(read_gguf(path),), file_bytes=path.stat().st_size), n_ctx)
    assert result.ok, result.error
    return {"weights": result.weight_bytes, "kv": result.kv_bytes or 0,
            "total": result.total_bytes or 0}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="512,4096,16384")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, build in MODELS.items():
            arch, hparams, tensors = build()
            path = Path(tmp) / f"{arch}.gguf"
            write_model(path, arch, hparams, tensors)
            for n_ctx in contexts:
                try:
                    theirs = llama_cpp_sizes(path, n_ctx)
                except RuntimeError as exc:
                    rows.append({"model": label, "n_ctx": n_ctx, "error": str(exc)[-300:]})
                    continue
                mine = ours(path, n_ctx)
                kv_theirs = theirs.get("kv", 0) + theirs.get("recurrent", 0)
                total_theirs = theirs.get("weights", 0) + kv_theirs + theirs.get("compute", 0)
                rows.append({
                    "model": label, "n_ctx": n_ctx,
                    "weights": (mine["weights"], theirs.get("weights")),
                    "kv": (mine["kv"], kv_theirs),
                    "total": (mine["total"], total_theirs),
                })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':<14} {'ctx':>6}  {'weights ours/llama.cpp MiB':>28} {'diff':>7}  "
          f"{'KV ours/llama.cpp MiB':>24} {'diff':>7}  {'total ours/llama.cpp MiB':>26} {'diff':>7}")  # fmt: skip
    for row in rows:
        if "error" in row:
            print(f"{row['model']:<14} {row['n_ctx']:>6}  llama.cpp failed: {row['error']!r}")
            continue
        cells = []
        for key in ("weights", "kv", "total"):
            mine, theirs = row[key]
            diff = (mine - theirs) / theirs * 100 if theirs else float("nan")
            cells.append(f"{mine / 2**20:>12.3f} / {theirs / 2**20:<12.3f} {diff:>+6.1f}%")
        print(f"{row['model']:<14} {row['n_ctx']:>6}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
