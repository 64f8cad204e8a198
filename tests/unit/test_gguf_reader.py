"""The GGUF header reader against real files written by llama.cpp's `gguf` package."""

from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

from gguf_tui.gguf import (
    GGUFError,
    GGUFInfo,
    GGUFTruncated,
    ggml_type_name,
    parse_gguf_bytes,
    quant_name_from_file_type,
    read_gguf,
)
from tests.helpers.ggufgen import (
    QWEN_VOCAB_SIZE,
    llama_tensor_shapes,
    make_gguf,
    make_mmproj_gguf,
    make_split_gguf,
    make_vocab_gguf,
)

# Offsets in every file our generators write: the header, then "general.architecture" first.
KV_COUNT_AT = 16
FIRST_KEY_LENGTH_AT = 24
FIRST_VALUE_TYPE_AT = 24 + 8 + len("general.architecture")
FIRST_VALUE_LENGTH_AT = FIRST_VALUE_TYPE_AT + 4

SHORT_TYPE_NAMES = {
    GGUFValueType.STRING: "str",
    GGUFValueType.FLOAT32: "f32",
    GGUFValueType.INT32: "i32",
    GGUFValueType.UINT32: "u32",
}


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A llama file with a 151,936-token vocabulary, written once for the module."""
    return make_vocab_gguf(tmp_path_factory.mktemp("vocab") / "Tiny-Vocab-Q4_K_M.gguf")


@pytest.fixture(scope="module")
def small_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A llama file with a 300-token vocabulary: quick to corrupt and to read with GGUFReader."""
    return make_vocab_gguf(tmp_path_factory.mktemp("small") / "small.gguf", n_vocab=300)


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def array_offset(data: bytes, key: str) -> int:
    """Offset of an array KV's element type, just after its key."""
    encoded = key.encode()
    return data.index(struct.pack("<Q", len(encoded)) + encoded) + 8 + len(encoded) + 4


# --- facts from real files -------------------------------------------------------------------


def test_vocab_file_facts(vocab_path: Path) -> None:
    info = read_gguf(vocab_path)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.name == "Tiny-Vocab"
    assert info.file_type == 15 and info.quantization == "Q4_K_M"
    assert info.context_length == 32768
    assert info.license == "apache-2.0"
    assert (info.split_index, info.split_count, info.split_tensor_count) == (None, None, None)
    assert info.projector_type is None and not info.is_mmproj
    assert info.tensor_count == len(llama_tensor_shapes())
    assert info.kv_count == len(info.metadata) == 17
    assert info.alignment == 32
    assert info.tensor_data_offset % 32 == 0
    assert info.min_file_size == vocab_path.stat().st_size
    assert info.metadata["tokenizer.ggml.tokens"] == f"<array of {QWEN_VOCAB_SIZE} str>"
    assert info.metadata["tokenizer.ggml.scores"] == f"<array of {QWEN_VOCAB_SIZE} f32>"
    assert info.metadata["tokenizer.ggml.token_type"] == f"<array of {QWEN_VOCAB_SIZE} i32>"
    assert info.metadata["llama.rope.dimension_sections"] == [16, 24, 24, 0]
    assert info.metadata["tokenizer.chat_template"].startswith("{% for m in messages")


def test_vocab_is_skipped_not_decoded(vocab_path: Path) -> None:
    # GGUFReader takes seconds on this file because it builds an object per token; walking
    # the lengths takes milliseconds. The bound is loose so a loaded machine does not flake.
    read_gguf(vocab_path)
    started = time.perf_counter()
    read_gguf(vocab_path)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("kind", ["small", "split-part-1", "split-part-2", "mmproj"])
def test_agrees_with_gguf_reader(kind: str, small_path: Path, tmp_path: Path) -> None:
    if kind == "small":
        path = small_path
    elif kind.startswith("split"):
        path = make_split_gguf(tmp_path)[int(kind[-1]) - 1]
    else:
        path = make_mmproj_gguf(tmp_path / "mmproj.gguf")
    reference = GGUFReader(path)
    info = read_gguf(path)
    assert info.tensor_data_offset == reference.data_offset
    assert info.alignment == reference.alignment
    assert info.tensor_count == len(reference.tensors)
    assert info.kv_count == len(reference.fields) - 3  # GGUFReader adds three header fields
    assert info.parameter_count == sum(int(t.n_elements) for t in reference.tensors)
    for key, field in reference.fields.items():
        if key.startswith("GGUF.") or key not in info.metadata:
            continue
        value = info.metadata[key]
        if isinstance(value, str) and value.startswith("<array of "):
            item_type = SHORT_TYPE_NAMES[GGUFValueType(field.types[-1])]
            assert value == f"<array of {len(field.data)} {item_type}>"
            continue
        expected = field.contents()
        if isinstance(expected, float):
            assert value == pytest.approx(expected)
        elif isinstance(expected, list) and expected and isinstance(expected[0], float):
            assert value == pytest.approx(expected)
        else:
            assert value == expected, key


def test_split_set_written_by_the_writer(tmp_path: Path) -> None:
    paths = make_split_gguf(tmp_path, "Tiny-Split-Q8_0", parts=3)
    assert [p.name for p in paths] == [
        f"Tiny-Split-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    infos = [read_gguf(p) for p in paths]
    assert [i.split_index for i in infos] == [0, 1, 2]
    assert {i.split_count for i in infos} == {3}
    assert {i.split_tensor_count for i in infos} == {6}
    assert sum(i.tensor_count for i in infos) == 6
    # Like gguf-split, only the first part carries the model's metadata.
    assert (infos[0].architecture, infos[0].name, infos[0].quantization) == (
        "llama",
        "Tiny-Split",
        "Q8_0",
    )
    assert infos[0].context_length == 8192
    assert infos[1].architecture is None and infos[1].file_type is None
    # The quantisation of a later part is still known from its tensors.
    assert infos[1].quantization == "Q8_0"
    for path, info in zip(paths, infos):
        assert info.min_file_size == path.stat().st_size


def test_mmproj(tmp_path: Path) -> None:
    info = read_gguf(make_mmproj_gguf(tmp_path / "mmproj-Tiny-F16.gguf"))
    assert info.architecture == "clip" and info.is_mmproj
    assert info.projector_type == "mlp"
    assert info.quantization == "F16"
    assert info.context_length is None
    assert info.metadata["clip.has_vision_encoder"] is True
    assert info.metadata["clip.vision.image_mean"] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"projector_type": None}, "vision"),
        ({"projector_type": None, "has_audio_encoder": True}, "vision+audio"),
        ({"projector_type": None, "has_llava_projector": True}, "mlp"),
        ({"projector_type": "ldpv2"}, "ldpv2"),
    ],
)
def test_mmproj_projector_without_projector_type(
    tmp_path: Path, options: dict, expected: str
) -> None:
    assert read_gguf(make_mmproj_gguf(tmp_path / "m.gguf", **options)).projector_type == expected


def test_parameter_count_from_shapes_when_key_absent(small_path: Path) -> None:
    expected = sum(math.prod(shape) for _, shape in llama_tensor_shapes())
    info = read_gguf(small_path)
    assert "general.parameter_count" not in info.metadata
    assert info.parameter_count == expected


def test_parameter_count_key_wins(tmp_path: Path) -> None:
    path = make_vocab_gguf(tmp_path / "p.gguf", n_vocab=10, parameter_count=8_190_735_360)
    assert read_gguf(path).parameter_count == 8_190_735_360


@pytest.mark.parametrize(
    ("file_type", "name"),
    [(0, "F32"), (1, "F16"), (7, "Q8_0"), (15, "Q4_K_M"), (17, "Q5_K_M"), (18, "Q6_K"),
     (30, "IQ4_XS"), (32, "BF16"), (38, "MXFP4_MOE"), (1024 | 15, "Q4_K_M"), (5, None),
     (999, None), (-1, None)],
)  # fmt: skip
def test_quant_name_from_file_type(file_type: int, name: str | None) -> None:
    assert quant_name_from_file_type(file_type) == name


def test_quant_names_follow_llama_cpp_numbering() -> None:
    for file_type in LlamaFileType:
        if file_type is not LlamaFileType.GUESSED:
            expected = file_type.name.removeprefix("MOSTLY_").removeprefix("ALL_")
            assert quant_name_from_file_type(file_type.value) == expected
    for ggml_type in GGMLQuantizationType:
        assert ggml_type_name(ggml_type.value) == ggml_type.name


def test_file_type_written_is_reported(tmp_path: Path) -> None:
    path = make_vocab_gguf(tmp_path / "f.gguf", n_vocab=10, file_type=30)
    info = read_gguf(path)
    assert (info.file_type, info.quantization) == (30, "IQ4_XS")


@pytest.mark.parametrize(
    ("matrix_type", "name"),
    [(GGMLQuantizationType.Q4_K, "Q4_K"), (GGMLQuantizationType.Q8_0, "Q8_0"),
     (GGMLQuantizationType.F16, "F16"), (GGMLQuantizationType.IQ4_XS, "IQ4_XS")],
)  # fmt: skip
def test_quantization_inferred_from_tensors_without_file_type(
    tmp_path: Path, matrix_type: GGMLQuantizationType, name: str
) -> None:
    # Norms stay F32 and outnumber the matrices; the type holding most matrix elements wins.
    path = make_vocab_gguf(tmp_path / "q.gguf", n_vocab=10, file_type=None, matrix_type=matrix_type)
    info = read_gguf(path)
    assert info.file_type is None
    assert info.quantization == name
    assert info.min_file_size == path.stat().st_size


def test_custom_alignment_and_version_2(tmp_path: Path) -> None:
    path = tmp_path / "aligned.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_custom_alignment(64)
    writer.add_tensor("a.weight", make_tensor((3, 5)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = read_gguf(path)
    assert info.alignment == 64 and info.tensor_data_offset % 64 == 0
    assert info.tensor_data_offset == GGUFReader(path).data_offset
    assert info.parameter_count == 15
    v2 = patched(path.read_bytes(), 4, "<I", 2)
    assert parse_gguf_bytes(v2).version == 2


def make_tensor(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def test_to_json_is_json_safe_and_short(tmp_path: Path, small_path: Path) -> None:
    info = read_gguf(small_path)
    info.metadata["tokenizer.chat_template"] = "x" * 10_000
    info.metadata["weird"] = float("nan")
    out = info.to_json()
    text = json.dumps(out, allow_nan=False)
    assert len(text) < 4000
    assert out["quantization"] == "Q4_K_M" and out["architecture"] == "llama"
    assert out["metadata"]["tokenizer.ggml.tokens"] == "<array of 300 str>"
    assert set(out) >= {f for f in GGUFInfo.__dataclass_fields__}


def test_long_string_value_becomes_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "long.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_string("tokenizer.chat_template", "y" * 100_000)
    writer.add_string("general.name", "after the long one")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = read_gguf(path)
    assert info.metadata["tokenizer.chat_template"] == "<string of 100000 bytes>"
    assert info.name == "after the long one"
    assert info.parameter_count is None and info.tensor_count == 0


def test_accepts_memoryview_and_bytearray(small_path: Path) -> None:
    data = small_path.read_bytes()
    expected = read_gguf(small_path)
    assert parse_gguf_bytes(memoryview(data)) == expected
    assert parse_gguf_bytes(bytearray(data)) == expected
    assert parse_gguf_bytes(data[: expected.tensor_data_offset]) == expected


# --- prefixes, as a remote reader fetching with Range requests sees them ---------------------


@pytest.mark.parametrize("start", [0, 3, 24, 100, 2000])
def test_truncated_prefix_says_how_much_to_fetch(small_path: Path, start: int) -> None:
    data = small_path.read_bytes()
    expected = read_gguf(small_path)
    have, rounds = start, 0
    while True:
        try:
            info = parse_gguf_bytes(data[:have])
            break
        except GGUFTruncated as short:
            assert short.needed > have
            assert "truncated GGUF header" in str(short)
            have = short.needed
            rounds += 1
            assert rounds < 1000
    assert info == expected
    assert have <= expected.tensor_data_offset


def test_needed_on_a_big_vocabulary_grows_fast(vocab_path: Path) -> None:
    data = vocab_path.read_bytes()
    with pytest.raises(GGUFTruncated) as caught:
        parse_gguf_bytes(data[:4096])
    # The vocabulary's length prefixes alone need 8 bytes per token.
    assert caught.value.needed > 8 * QWEN_VOCAB_SIZE
    have, rounds = caught.value.needed, 0
    while True:
        try:
            parse_gguf_bytes(data[:have])
            break
        except GGUFTruncated as short:
            have, rounds = short.needed, rounds + 1
    assert rounds < 40


def test_total_size_turns_truncation_into_a_plain_error(small_path: Path) -> None:
    data = small_path.read_bytes()
    with pytest.raises(GGUFTruncated):
        parse_gguf_bytes(data[:500], total_size=len(data))
    with pytest.raises(GGUFError, match="truncated GGUF file") as caught:
        parse_gguf_bytes(data[:500], total_size=500)
    assert type(caught.value) is GGUFError


# --- malformed files ------------------------------------------------------------------------


def read_error(tmp_path: Path, data: bytes) -> GGUFError:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(GGUFError) as caught:
        read_gguf(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert type(caught.value) is GGUFError
    return caught.value


def test_bad_magic(tmp_path: Path) -> None:
    error = read_error(tmp_path, b"PK\x03\x04" + bytes(100))
    assert "not a GGUF file (bad magic b'PK\\x03\\x04')" in str(error)
    with pytest.raises(GGUFError, match="bad magic"):
        parse_gguf_bytes(b"GGML")


def test_empty_missing_and_directory(tmp_path: Path) -> None:
    assert "empty file" in str(read_error(tmp_path, b""))
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf(tmp_path)


@pytest.mark.parametrize("cut", ["magic", "header", "key", "value", "vocab", "scores", "tensors"])
def test_truncated_on_disk(tmp_path: Path, small_path: Path, cut: str) -> None:
    data = small_path.read_bytes()
    info = read_gguf(small_path)
    at = {
        "magic": 3,
        "header": 20,
        "key": FIRST_KEY_LENGTH_AT + 10,
        "value": FIRST_VALUE_LENGTH_AT + 9,
        "vocab": array_offset(data, "tokenizer.ggml.tokens") + 500,
        "scores": array_offset(data, "tokenizer.ggml.scores") + 100,
        "tensors": info.tensor_data_offset - 40,
    }[cut]
    error = read_error(tmp_path, data[:at])
    assert "truncated" in str(error)
    assert not isinstance(error, GGUFTruncated)


def test_tensor_data_missing_is_not_a_header_error(tmp_path: Path, small_path: Path) -> None:
    info = read_gguf(small_path)
    path = tmp_path / "partial.gguf"
    path.write_bytes(small_path.read_bytes()[: info.tensor_data_offset + 10])
    partial = read_gguf(path)
    assert partial.min_file_size == info.min_file_size > path.stat().st_size


def test_unknown_version(tmp_path: Path, small_path: Path) -> None:
    data = small_path.read_bytes()
    assert "unsupported GGUF version 7" in str(read_error(tmp_path, patched(data, 4, "<I", 7)))
    assert "unsupported GGUF version 1" in str(read_error(tmp_path, patched(data, 4, "<I", 1)))
    big_endian = patched(data, 4, ">I", 3)
    assert "big-endian" in str(read_error(tmp_path, big_endian))


@pytest.mark.parametrize("count", [2**40, 1_000_001])
def test_absurd_kv_count(tmp_path: Path, small_path: Path, count: int) -> None:
    data = patched(small_path.read_bytes(), KV_COUNT_AT, "<Q", count)
    assert f"KV count {count} at offset 16 is absurd" in str(read_error(tmp_path, data))
    with pytest.raises(GGUFError, match="absurd"):
        parse_gguf_bytes(data[:64])


def test_kv_count_impossible_for_file_size(tmp_path: Path, small_path: Path) -> None:
    header = small_path.read_bytes()[: read_gguf(small_path).tensor_data_offset]
    data = patched(header, KV_COUNT_AT, "<Q", 60_000)
    assert "KV count 60000 and tensor count 9 need at least" in str(read_error(tmp_path, data))


def test_absurd_tensor_count(tmp_path: Path, small_path: Path) -> None:
    data = patched(small_path.read_bytes(), 8, "<Q", 2**62)
    assert "tensor count" in str(read_error(tmp_path, data))


@pytest.mark.parametrize("length", [2**63, 9 * 10**18, 64 * 1024 * 1024 + 1])
def test_absurd_string_length(tmp_path: Path, small_path: Path, length: int) -> None:
    data = small_path.read_bytes()
    key = patched(data, FIRST_KEY_LENGTH_AT, "<Q", length)
    assert f"key length {length} at offset 24 is absurd" in str(read_error(tmp_path, key))
    value = patched(data, FIRST_VALUE_LENGTH_AT, "<Q", length)
    message = str(read_error(tmp_path, value))
    assert f"string length {length} at offset {FIRST_VALUE_LENGTH_AT} is absurd" in message
    # The same from a prefix, before any fetch of a giant range.
    with pytest.raises(GGUFError, match="absurd"):
        parse_gguf_bytes(value[:200])


def test_absurd_string_inside_the_vocabulary(tmp_path: Path, small_path: Path) -> None:
    data = small_path.read_bytes()
    first_token = array_offset(data, "tokenizer.ggml.tokens") + 4 + 8  # after type and count
    for length in (2**62, 2**40, 100 * 1024 * 1024):
        bad = patched(data, first_token, "<Q", length)
        expected = f"string length {length} at offset {first_token} is absurd"
        assert expected in str(read_error(tmp_path, bad))
        with pytest.raises(GGUFError, match=expected):
            parse_gguf_bytes(bad)


def test_unknown_value_type(tmp_path: Path, small_path: Path) -> None:
    data = patched(small_path.read_bytes(), FIRST_VALUE_TYPE_AT, "<I", 13)
    message = str(read_error(tmp_path, data))
    assert "unknown value type 13 for key 'general.architecture'" in message


def test_unknown_array_item_type_and_nested_array(tmp_path: Path, small_path: Path) -> None:
    data = small_path.read_bytes()
    at = array_offset(data, "tokenizer.ggml.tokens")
    assert "unknown value type 99" in str(read_error(tmp_path, patched(data, at, "<I", 99)))
    assert "nested array" in str(read_error(tmp_path, patched(data, at, "<I", 9)))


def test_absurd_array_length(tmp_path: Path, small_path: Path) -> None:
    data = small_path.read_bytes()
    at = array_offset(data, "tokenizer.ggml.scores") + 4
    message = str(read_error(tmp_path, patched(data, at, "<Q", 2**50)))
    assert "array length 1125899906842624 for key 'tokenizer.ggml.scores'" in message


def test_too_many_dimensions(tmp_path: Path, small_path: Path) -> None:
    data = small_path.read_bytes()
    name = b"token_embd.weight"
    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    message = str(read_error(tmp_path, patched(data, at, "<I", 9)))
    assert "tensor 'token_embd.weight'" in message and "9 dimensions" in message


def test_duplicate_key(tmp_path: Path) -> None:
    key = b"general.name"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, 1) + b"x"
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv + kv
    assert "duplicate key 'general.name'" in str(read_error(tmp_path, data))


def test_bad_alignment(tmp_path: Path) -> None:
    key = b"general.alignment"
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    data += struct.pack("<II", 4, 48)
    assert "not a power of two" in str(read_error(tmp_path, data))


def test_random_corruption_never_crashes_or_hangs(small_path: Path) -> None:
    data = small_path.read_bytes()[: read_gguf(small_path).tensor_data_offset]
    rng = random.Random(1234)
    started = time.perf_counter()
    for _ in range(400):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(bad))
            bad[at] = rng.randrange(256)
        if rng.random() < 0.3:
            bad = bad[: rng.randrange(len(bad))]
        try:
            parse_gguf_bytes(bytes(bad), total_size=len(bad) if rng.random() < 0.5 else None)
        except GGUFError as error:
            assert "\n" not in str(error)
    assert time.perf_counter() - started < 5


def test_old_make_gguf_still_reads(tmp_path: Path) -> None:
    info = read_gguf(make_gguf(tmp_path / "m.gguf", tensor_bytes=4096, context_length=2048))
    assert (info.architecture, info.context_length, info.quantization) == ("llama", 2048, "F32")
    assert info.parameter_count == 1024


def test_reader_imports_neither_textual_nor_numpy() -> None:
    code = (
        "import sys, gguf_tui.gguf as g; "
        "assert 'textual' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
