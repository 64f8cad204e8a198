"""A small repo whose three quants land on three different fit verdicts on stated GPUs.

On GPUs stated as `FIT_GPUS` at the default 8k context: Q4_0 fits on the GPUs, Q8_0 fits
(but needs a partial offload at 32k: its KV cache is 16 KiB per token), and F16 runs from RAM
only (its long key/value heads make each layer's cache 512 MiB at 8k; at 4k one layer fits).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.fitgen import make_arch_gguf

FIT_GPUS = "300M,700M"
FIT_REPO = "acme/Fit-GGUF"
_COMMON = {"context_length": 65536}


def make_fit_quants(folder: Path) -> dict[str, Path]:
    """The quants' files by repo path."""
    light = {"attention.head_count": 8, "attention.head_count_kv": 8, **_COMMON}
    wide = {"attention.head_count": 32, "attention.head_count_kv": 32, **_COMMON}
    long_heads = {**light, "attention.key_length": 2048, "attention.value_length": 2048}
    return {
        "Fit-Q4_0.gguf": make_arch_gguf(folder / "Fit-Q4_0.gguf", "llama", light, n_layer=4, n_embd=256)[0],
        "Fit-Q8_0.gguf": make_arch_gguf(folder / "Fit-Q8_0.gguf", "llama", wide, n_layer=4, n_embd=1024)[0],
        "Fit-F16.gguf": make_arch_gguf(folder / "Fit-F16.gguf", "llama", long_heads, n_layer=4, n_embd=256)[0],
    }
