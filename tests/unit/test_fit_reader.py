"""The GGUF reader keeps what a memory estimate needs, whatever else the header holds."""

from __future__ import annotations

from pathlib import Path

from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

from gguf_tui.gguf import read_gguf
from gguf_tui.gguf.reader import METADATA_KEEP_KEYS
from tests.helpers.fitgen import make_arch_gguf
from tests.helpers.ggufgen import _add_tensors, _finish


def test_hyper_parameters_are_kept_after_a_flood_of_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "flood.gguf"
    writer = GGUFWriter(str(path), "llama")
    for index in range(METADATA_KEEP_KEYS + 100):  # custom keys before the architecture's
        writer.add_string(f"custom.note_{index:04d}", "x" * 60)
    writer.add_block_count(40)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv([1, 2] * 20)
    writer.add_context_length(4096)
    _add_tensors(writer, [("blk.0.attn_q.weight", (64, 64))], GGMLQuantizationType.F32)
    _finish(writer)
    info = read_gguf(path)
    assert info.metadata["llama.block_count"] == 40
    assert info.metadata["llama.attention.head_count_kv"] == [1, 2] * 20
    assert info.metadata["llama.context_length"] == 4096
    assert len(info.metadata) <= METADATA_KEEP_KEYS


def test_tensor_bytes_by_block_match_the_tensor_table(tmp_path: Path) -> None:
    [path] = make_arch_gguf(tmp_path / "m.gguf", "llama", {"attention.head_count": 4}, n_layer=3)
    table = read_gguf(path).tensor_bytes
    assert table is not None
    tensors = GGUFReader(path).tensors
    for block in range(3):
        expected = sum(int(t.n_bytes) for t in tensors if t.name.startswith(f"blk.{block}."))
        assert table.layers[block] == expected
    assert table.other == sum(int(t.n_bytes) for t in tensors if not t.name.startswith("blk."))
    assert read_gguf(path).to_json()["tensor_bytes"]["total"] == table.total


def test_token_embeddings_and_a_tied_output_are_told_apart(tmp_path: Path) -> None:
    hparams = {"attention.head_count": 4}
    [separate] = make_arch_gguf(tmp_path / "a.gguf", "llama", hparams, n_layer=2)
    [tied] = make_arch_gguf(tmp_path / "b.gguf", "llama", hparams, n_layer=2, tied_output=True)
    embd = next(int(t.n_bytes) for t in GGUFReader(separate).tensors if t.name == "token_embd.weight")
    table = read_gguf(separate).tensor_bytes
    assert table is not None and table.input == embd and table.has_output
    tied_table = read_gguf(tied).tensor_bytes
    assert tied_table is not None and tied_table.input == embd and not tied_table.has_output
