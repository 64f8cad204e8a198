"""Real GGUF files for tests, written with llama.cpp's own `gguf` writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quant_shape_to_byte_shape


def make_gguf(
    path: Path,
    *,
    tensor_bytes: int = 1 << 20,
    arch: str = "llama",
    name: str = "test-model",
    context_length: int = 4096,
    seed: int = 0,
) -> Path:
    """Write a small but real llama-style GGUF with one F32 tensor of about `tensor_bytes`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_block_count(1)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_file_type(0)
    count = max(16, tensor_bytes // 4)
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.random(count, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- richer generators: vocabulary, split sets, mmproj, quantised tensors -------------------

QWEN_VOCAB_SIZE = 151_936

_TOKEN_PIECES = ("Ġ", "▁", "ing", "er", "the", "é", "中", "##", " ", "\n", "<", ">", "0", "x")


def fake_vocab(n_vocab: int, seed: int = 0) -> list[str]:
    """Deterministic, unique token strings of mixed lengths, some non-ASCII, like a BPE vocab."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 4, size=n_vocab)
    picks = rng.integers(0, len(_TOKEN_PIECES), size=int(lengths.sum()))
    tokens, at = [], 0
    for index, length in enumerate(lengths.tolist()):
        pieces = "".join(_TOKEN_PIECES[p] for p in picks[at : at + length].tolist())
        at += length
        tokens.append(f"{pieces}{index}")
    return tokens


def llama_tensor_shapes(n_embd: int = 256, blocks: int = 2, n_vocab_rows: int = 32) -> list[
    tuple[str, tuple[int, ...]]
]:
    """Names and numpy-order shapes of a tiny llama's tensors (row length last)."""
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab_rows, n_embd))]
    for block in range(blocks):
        shapes += [
            (f"blk.{block}.attn_norm.weight", (n_embd,)),
            (f"blk.{block}.attn_q.weight", (n_embd, n_embd)),
            (f"blk.{block}.ffn_down.weight", (n_embd, n_embd)),
        ]
    shapes += [("output_norm.weight", (n_embd,)), ("output.weight", (n_vocab_rows, n_embd))]
    return shapes


def tensor_data(shape: tuple[int, ...], ggml_type: GGMLQuantizationType, seed: int = 0) -> np.ndarray:
    """Data for a tensor of `shape` elements in `ggml_type` (random bytes for quantised types)."""
    rng = np.random.default_rng(seed)
    if ggml_type == GGMLQuantizationType.F32:
        return rng.random(shape, dtype=np.float32)
    if ggml_type == GGMLQuantizationType.F16:
        return rng.random(shape, dtype=np.float32).astype(np.float16)
    return rng.integers(0, 256, size=quant_shape_to_byte_shape(shape, ggml_type), dtype=np.uint8)


def _add_tensors(
    writer: GGUFWriter,
    shapes: list[tuple[str, tuple[int, ...]]],
    matrix_type: GGMLQuantizationType,
) -> None:
    for index, (name, shape) in enumerate(shapes):
        # Like llama.cpp's quantiser: matrices take the file's type, 1-D tensors stay F32.
        ggml_type = matrix_type if len(shape) >= 2 else GGMLQuantizationType.F32
        data = tensor_data(shape, ggml_type, seed=index)
        raw_dtype = None if ggml_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16) else ggml_type
        writer.add_tensor(name, data, raw_dtype=raw_dtype)


def _finish(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_vocab_gguf(
    path: Path,
    *,
    n_vocab: int = QWEN_VOCAB_SIZE,
    arch: str = "llama",
    name: str = "Tiny-Vocab",
    file_type: int | None = 15,
    matrix_type: GGMLQuantizationType = GGMLQuantizationType.F32,
    parameter_count: int | None = None,
    context_length: int = 32768,
    license: str = "apache-2.0",
    n_embd: int = 256,
    blocks: int = 2,
    seed: int = 0,
) -> Path:
    """A llama-style GGUF with a real-size vocabulary (tokens, scores, token types) and tiny
    tensors from `llama_tensor_shapes(n_embd, blocks)`. `file_type` None leaves
    `general.file_type` out; `parameter_count` sets `general.parameter_count` (u64)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_license(license)
    if parameter_count is not None:
        writer.add_uint64("general.parameter_count", parameter_count)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_context_length(context_length)
    writer.add_block_count(blocks)
    writer.add_embedding_length(n_embd)
    writer.add_head_count(4)
    writer.add_rope_dimension_sections([16, 24, 24, 0])
    if n_vocab:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen2")
        writer.add_token_list(fake_vocab(n_vocab, seed))
        writer.add_token_scores([float(-i) for i in range(n_vocab)])
        writer.add_token_types([1] * n_vocab)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    _add_tensors(writer, llama_tensor_shapes(n_embd, blocks), matrix_type)
    _finish(writer)
    return path


def make_split_gguf(
    directory: Path,
    stem: str = "Tiny-Split-Q8_0",
    *,
    parts: int = 3,
    arch: str = "llama",
    name: str = "Tiny-Split",
    file_type: int = 7,
    n_vocab: int = 1000,
    n_embd: int = 256,
) -> list[Path]:
    """A model split into `parts` files by the writer's own `split_max_tensors`, named like
    llama.cpp's gguf-split (`<stem>-00001-of-00003.gguf`). As with gguf-split, only the first
    part carries the model's metadata; every part has split.no/count/tensors.count."""
    directory.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(directory / f"{stem}.gguf"), arch, split_max_tensors=2)
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(8192)
    writer.add_block_count(parts)
    writer.add_embedding_length(n_embd)
    if n_vocab:
        writer.add_tokenizer_model("llama")
        writer.add_token_list(fake_vocab(n_vocab))
    shapes = []
    for block in range(parts):
        shapes += [
            (f"blk.{block}.attn_q.weight", (n_embd, n_embd)),
            (f"blk.{block}.ffn_down.weight", (n_embd, n_embd)),
        ]
    _add_tensors(writer, shapes, GGMLQuantizationType.Q8_0)
    paths = writer.format_shard_names(writer.path)
    _finish(writer)
    return paths


def make_mmproj_gguf(
    path: Path,
    *,
    projector_type: str | None = "mlp",
    name: str = "Tiny-mmproj",
    file_type: int = 1,
    has_vision_encoder: bool = True,
    has_audio_encoder: bool = False,
    has_llava_projector: bool | None = None,
) -> Path:
    """A multimodal projector file like llama.cpp's mmproj-*.gguf (architecture `clip`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), "clip")
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_clip_has_vision_encoder(has_vision_encoder)
    if has_audio_encoder:
        writer.add_clip_has_audio_encoder(True)
    if has_llava_projector is not None:
        writer.add_bool("clip.has_llava_projector", has_llava_projector)
    if projector_type is not None:
        writer.add_clip_projector_type(projector_type)
    writer.add_vision_image_size(224)
    writer.add_vision_patch_size(14)
    writer.add_vision_embedding_length(64)
    writer.add_vision_block_count(1)
    writer.add_vision_image_mean([0.5, 0.5, 0.5])
    writer.add_vision_image_std([0.5, 0.5, 0.5])
    writer.add_tensor("v.patch_embd.weight", tensor_data((64, 3, 14, 14), GGMLQuantizationType.F16))
    writer.add_tensor("v.blk.0.attn_q.weight", tensor_data((64, 64), GGMLQuantizationType.F16))
    writer.add_tensor("v.blk.0.ln1.weight", tensor_data((64,), GGMLQuantizationType.F32))
    writer.add_tensor("mm.0.weight", tensor_data((128, 64), GGMLQuantizationType.F16))
    writer.add_tensor("mm.0.bias", tensor_data((128,), GGMLQuantizationType.F32))
    _finish(writer)
    return path


# --- a store with managed models, as the engine leaves it ------------------------------------


def add_managed_model(
    store: Path,
    name: str,
    files: dict[str, Path],
    *,
    roles: dict[str, str] | None = None,
    added_at: float | None = None,
    last_used_at: float | None = None,
    verified: bool = True,
) -> Path:
    """Copy real GGUF files to `store/<relative>` and write the manifest the engine would write
    for one logical model holding them. Returns the manifest's path."""
    import hashlib
    import shutil
    import time

    from gguf_tui.gguf import read_gguf
    from gguf_tui.store.layout import StoreLayout
    from gguf_tui.store.manifest import Manifest, ManifestFile

    layout = StoreLayout(store)
    layout.ensure()
    now = time.time()
    entries = []
    for relative, source in files.items():
        dest = store / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        data = dest.read_bytes()
        entries.append(
            ManifestFile(
                path=relative,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                role=(roles or {}).get(relative, "model"),
                verified_at=now if verified else None,
                sha256_source="published",
            )
        )
    main = next(e for e in entries if e.role != "mmproj")
    manifest = Manifest(
        name=name,
        files=entries,
        source={"kind": "test"},
        gguf=read_gguf(store / main.path).to_json(),
        added_at=now if added_at is None else added_at,
        last_used_at=last_used_at,
    )
    path = layout.manifest_path(name)
    manifest.save(path)
    return path
