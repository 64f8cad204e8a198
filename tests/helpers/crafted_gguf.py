"""Hostile GGUF headers as real sparse files: tiny on disk, huge in what their counts claim.

Zero bytes are valid GGUF records (an empty string, an empty tensor info with type F32), so a
hole in a sparse file reads as millions of records while the disk holds a few kilobytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

from gguf_tui.gguf.reader import MAX_ARRAY_STRINGS, MAX_KV_COUNT, MAX_TENSOR_COUNT

STRING, ARRAY, U8, U64 = 8, 9, 0, 10


def _key(name: str) -> bytes:
    encoded = name.encode()
    return struct.pack("<Q", len(encoded)) + encoded


def _start(handle, tensor_count: int, kv_count: int) -> None:
    handle.write(b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count))


def _finish(handle, tail: int = 4096) -> None:
    """Leave a hole of `tail` bytes at the end (the reader sees zeros) and set the size."""
    handle.truncate(handle.tell() + tail)


def long_strings(path: Path, count: int = 40, length: int = 60 << 20) -> Path:
    """`count` string values of `length` bytes each, all holes."""
    with open(path, "wb") as handle:
        _start(handle, 0, count)
        for index in range(count):
            handle.write(_key(f"crafted.long.{index}") + struct.pack("<IQ", STRING, length))
            handle.seek(length, 1)
        _finish(handle)
    return path


def scalar_arrays(path: Path, count: int = 12, length: int = 1 << 24) -> Path:
    """`count` u64 arrays of `length` items, all holes."""
    with open(path, "wb") as handle:
        _start(handle, 0, count)
        for index in range(count):
            handle.write(_key(f"crafted.array.{index}") + struct.pack("<IIQ", ARRAY, U64, length))
            handle.seek(8 * length, 1)
        _finish(handle)
    return path


def string_arrays(path: Path, count: int = 4, length: int = 1 << 24) -> Path:
    """`count` arrays of `length` empty strings (their length prefixes are holes)."""
    with open(path, "wb") as handle:
        _start(handle, 0, count)
        for index in range(count):
            key = _key(f"crafted.tokens.{index}")
            handle.write(key + struct.pack("<IIQ", ARRAY, STRING, length))
            handle.seek(8 * length, 1)
        _finish(handle)
    return path


def tensor_infos(path: Path, count: int = 10_000_000) -> Path:
    """`count` empty tensor infos (no name, no dimensions, F32, offset 0), all holes."""
    with open(path, "wb") as handle:
        _start(handle, count, 0)
        handle.seek(24 * count, 1)
        _finish(handle)
    return path


def many_keys(path: Path, count: int = 1_000_000) -> Path:
    """`count` distinct u8 KVs: real bytes, about 30 bytes each."""
    with open(path, "wb") as handle:
        _start(handle, 0, count)
        for first in range(0, count, 65536):
            handle.write(
                b"".join(
                    _key(f"crafted.key.{index:08d}") + struct.pack("<IB", U8, 1)
                    for index in range(first, min(count, first + 65536))
                )
            )
        _finish(handle)
    return path


def many_strings(path: Path, count: int = 4000, length: int = 16 << 10) -> Path:
    """`count` distinct KVs holding a `length`-byte string of zeros: short enough to keep."""
    with open(path, "wb") as handle:
        _start(handle, 0, count)
        for index in range(count):
            handle.write(_key(f"crafted.text.{index:06d}") + struct.pack("<IQ", STRING, length))
            handle.seek(length, 1)
        _finish(handle)
    return path


# The cases of issue 10.4, then valid headers at the reader's limits (read, not refused).
ALL = {
    "long-strings": long_strings,
    "u64-arrays": scalar_arrays,
    "string-arrays": string_arrays,
    "tensor-infos": tensor_infos,
    "many-keys": many_keys,
    "many-strings": many_strings,
    "tensor-infos-at-limit": lambda path: tensor_infos(path, MAX_TENSOR_COUNT),
    "keys-at-limit": lambda path: many_keys(path, MAX_KV_COUNT),
    "strings-at-limit": lambda path: string_arrays(path, 2, MAX_ARRAY_STRINGS // 2),
}
VALID = {"many-strings", "tensor-infos-at-limit", "keys-at-limit", "strings-at-limit"}
