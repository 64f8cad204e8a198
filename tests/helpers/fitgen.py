"""Real GGUF files of several architectures with chosen hyper-parameters, for the fit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFWriter

from tests.helpers.ggufgen import _add_tensors, _finish


def _add_value(writer: GGUFWriter, key: str, value: Any) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        if value < 0:
            writer.add_int32(key, value)
        else:
            writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    else:
        writer.add_array(key, list(value))


def make_arch_gguf(
    path: Path,
    arch: str,
    hparams: dict[str, Any],
    *,
    n_layer: int,
    n_embd: int = 64,
    n_vocab_rows: int = 32,
    matrix_type: GGMLQuantizationType = GGMLQuantizationType.Q8_0,
    tokens: int = 0,
    split_max_tensors: int = 0,
    tied_output: bool = False,
) -> list[Path]:
    """A GGUF for `arch` whose `<arch>.<key>` values are `hparams` (block_count and
    embedding_length are set from `n_layer`/`n_embd` unless given), with small real tensors:
    an embedding, two matrices and a norm per block, an output matrix. Returns the paths (several with `split_max_tensors`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    writer.add_name(f"tiny-{arch}")
    writer.add_file_type(7)
    values = {"block_count": n_layer, "embedding_length": n_embd, **hparams}
    for key, value in values.items():
        if value is not None:
            _add_value(writer, f"{arch}.{key}", value)
    if tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"t{i}" for i in range(tokens)])
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab_rows, n_embd))]
    for block in range(n_layer):
        shapes += [
            (f"blk.{block}.attn_norm.weight", (n_embd,)),
            (f"blk.{block}.attn_q.weight", (n_embd, n_embd)),
            (f"blk.{block}.ffn_down.weight", (2 * n_embd, n_embd)),
        ]
    shapes += [("output_norm.weight", (n_embd,))]
    if not tied_output:
        shapes += [("output.weight", (n_vocab_rows, n_embd))]
    _add_tensors(writer, shapes, matrix_type)
    paths = writer.format_shard_names(writer.path) if split_max_tensors else [path]
    _finish(writer)
    return paths
