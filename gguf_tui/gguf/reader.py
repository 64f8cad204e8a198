"""Parse a GGUF header (KVs and tensor infos) from bytes or a local file, with guard limits.

The header is: magic, version, tensor count, KV count, the metadata key/values, then one info
record per tensor (name, shape, ggml type, offset); tensor data starts at the next multiple of
the alignment. Big arrays (a 150k-token vocabulary) are skipped by walking their length
prefixes or by arithmetic, never decoded into Python objects. Every length and count read from
the file is bounded before use: a malformed or hostile file gives a one-line `GGUFError`, never
a crash, a hang or a giant allocation.
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from typing import Any, Callable

from gguf_tui.gguf.info import GGUFInfo, build_info
from gguf_tui.gguf.types import ggml_nbytes

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Guard limits: generous for real files (the biggest vocabularies are ~260k tokens, chat
# templates tens of KB), small enough that a corrupt count cannot make us loop or allocate.
MAX_STRING_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024
MAX_KV_COUNT = 1_000_000
MAX_TENSOR_COUNT = 10_000_000
MAX_ARRAY_LEN = 1 << 24
MAX_DIMS = 8

# What the metadata dict keeps verbatim; anything bigger becomes a short placeholder.
METADATA_STRING_MAX = 16 * 1024
METADATA_ARRAY_MAX = 32

# read_gguf reads this much first (most headers fit; vocabulary headers are a few MB) and
# at least doubles the prefix while the header goes on.
_FIRST_READ = 1 << 20
_GROWTH = 2

_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, KV count
_MIN_KV_SIZE = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_INFO_SIZE = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# GGUF value types: id -> (short name, struct format, or None for string and array).
_STRING, _ARRAY = 8, 9
_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("u8", "B"), 1: ("i8", "b"), 2: ("u16", "H"), 3: ("i16", "h"), 4: ("u32", "I"),
    5: ("i32", "i"), 6: ("f32", "f"), 7: ("bool", "?"), _STRING: ("str", None),
    _ARRAY: ("array", None), 10: ("u64", "Q"), 11: ("i64", "q"), 12: ("f64", "d"),
}  # fmt: skip
_SCALARS = {vtype: struct.Struct("<" + fmt) for vtype, (_, fmt) in _VALUE_TYPES.items() if fmt}


class GGUFError(Exception):
    """A file that is not a well-formed GGUF; the message is one line saying what is wrong."""


class GGUFTruncated(GGUFError):
    """The bytes given end before the header does; fetch at least `needed` bytes and retry."""

    def __init__(self, message: str, needed: int) -> None:
        super().__init__(message)
        self.needed = needed


class _Short(Exception):
    """Internal: a read would end at `end`, past the available bytes."""

    def __init__(self, end: int, offset: int) -> None:
        self.end = end
        self.offset = offset


def parse_gguf_bytes(
    data: bytes | bytearray | memoryview, *, total_size: int | None = None
) -> GGUFInfo:
    """Parse a GGUF header from the first bytes of a file.

    Raises `GGUFTruncated` when `data` ends before the tensor infos do; its `needed` is a lower
    bound on the prefix length, always more than `len(data)`, that lets parsing get further.
    Pass `total_size` (the whole file's size, e.g. from Content-Range) to have counts that
    cannot fit rejected early and a header longer than the file reported as a `GGUFError`.
    """
    buf = data
    if isinstance(data, memoryview) and (data.format != "B" or data.ndim != 1):
        buf = data.cast("B")
    return _Parser(buf, total_size).parse()


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read a local GGUF file's header: a first chunk, grown only while the header goes on.

    Plain reads rather than mmap: a file truncated by another process while mapped would kill
    the process with SIGBUS, and a header is a few MB at most.
    """
    display = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            file_size = os.fstat(handle.fileno()).st_size
            if file_size == 0:
                raise GGUFError("empty file, not a GGUF file")
            data = bytearray(handle.read(min(file_size, _FIRST_READ)))

            def fetch(end: int) -> bytearray:
                want = min(file_size, max(end, _GROWTH * len(data)))
                data.extend(handle.read(want - len(data)))
                if len(data) < end:
                    raise GGUFError("file shrank while its header was being read")
                return data

            return _Parser(data, file_size, fetch).parse()
    except GGUFError as error:
        raise GGUFError(f"{display}: {error}") from None
    except OSError as error:
        raise GGUFError(f"{display}: cannot read: {error.strerror or error}") from None


class _Parser:
    """One pass over a header held in a bytes-like buffer.

    With `fetch`, a short buffer is grown in place (`fetch(end)` returns a buffer at least
    `end` bytes long), so a local file is parsed in one pass however long its header is.
    """

    def __init__(
        self, buf: Any, total_size: int | None, fetch: Callable[[int], Any] | None = None
    ) -> None:
        self.buf = buf
        self.size = len(buf)
        self.total_size = total_size
        self.fetch = fetch
        self.pos = 0
        # Lower bound on the bytes the header still needs after the current record.
        self.rest_min = 0

    def parse(self) -> GGUFInfo:
        try:
            return self._parse()
        except _Short as short:
            needed = short.end + self.rest_min
            if self.total_size is not None and needed > self.total_size:
                raise GGUFError(
                    f"truncated GGUF file: the header needs at least {needed} bytes "
                    f"but the file has {self.total_size}"
                ) from None
            raise GGUFTruncated(
                f"truncated GGUF header at offset {short.offset} "
                f"(have {self.size} bytes, need at least {needed})",
                needed=needed,
            ) from None

    def _parse(self) -> GGUFInfo:
        head = bytes(self.buf[:4])
        if head != GGUF_MAGIC[: len(head)]:
            raise GGUFError(f"not a GGUF file (bad magic {head!r})")
        self.need(_HEADER.size)
        _, version, tensor_count, kv_count = _HEADER.unpack_from(self.buf, 0)
        self.pos = _HEADER.size
        if version not in SUPPORTED_VERSIONS:
            if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
                raise GGUFError("big-endian GGUF files are not supported")
            raise GGUFError(f"unsupported GGUF version {version} (this reader supports 2 and 3)")
        self.check_count("tensor count", tensor_count, MAX_TENSOR_COUNT, 8)
        self.check_count("KV count", kv_count, MAX_KV_COUNT, 16)
        if self.total_size is not None:
            least = (
                _HEADER.size + kv_count * _MIN_KV_SIZE + tensor_count * _MIN_TENSOR_INFO_SIZE
            )
            if least > self.total_size:
                raise GGUFError(
                    f"KV count {kv_count} and tensor count {tensor_count} need at least "
                    f"{least} bytes but the file has {self.total_size} (truncated or corrupt)"
                )

        metadata: dict[str, Any] = {}
        for index in range(kv_count):
            self.rest_min = (kv_count - index - 1) * _MIN_KV_SIZE
            self.rest_min += tensor_count * _MIN_TENSOR_INFO_SIZE
            key_offset = self.pos
            key = self.text(MAX_KEY_BYTES, "key")
            if key in metadata:
                raise GGUFError(f"duplicate key {key!r} at offset {key_offset}")
            metadata[key] = self.value(self.value_type(f"key {key!r}"), key)

        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
            raise GGUFError(f"general.alignment {alignment!r} is not a power of two")

        matrix_elements_by_type: Counter[int] = Counter()
        element_total = 0
        data_end: int | None = 0
        for index in range(tensor_count):
            self.rest_min = (tensor_count - index - 1) * _MIN_TENSOR_INFO_SIZE
            info_offset = self.pos
            name = self.text(MAX_KEY_BYTES, "tensor name")
            n_dims = self.u32()
            if n_dims > MAX_DIMS:
                raise GGUFError(f"tensor {name!r} at offset {info_offset} has {n_dims} dimensions")
            self.need(8 * n_dims)
            dims = struct.unpack_from(f"<{n_dims}Q", self.buf, self.pos)
            self.pos += 8 * n_dims
            ggml_type = self.u32()
            offset = self.u64()
            elements = math.prod(dims)
            if elements >= 1 << 63:
                raise GGUFError(f"tensor {name!r} at offset {info_offset} has absurd shape {dims}")
            element_total += elements
            # Only matrices count for the quantisation: llama.cpp keeps 1-D tensors in F32.
            if n_dims >= 2:
                matrix_elements_by_type[ggml_type] += elements
            nbytes = ggml_nbytes(ggml_type, dims)
            data_end = None if data_end is None or nbytes is None else max(data_end, offset + nbytes)

        tensor_data_offset = -(-self.pos // alignment) * alignment
        return build_info(
            metadata,
            element_total=element_total,
            matrix_elements_by_type=matrix_elements_by_type,
            version=version,
            tensor_count=tensor_count,
            kv_count=kv_count,
            alignment=alignment,
            tensor_data_offset=tensor_data_offset,
            min_file_size=None if data_end is None else tensor_data_offset + data_end,
        )

    def check_count(self, what: str, count: int, limit: int, offset: int) -> None:
        if count > limit:
            raise GGUFError(f"{what} {count} at offset {offset} is absurd (limit {limit})")

    # -- primitives ------------------------------------------------------------------------

    def need(self, n: int) -> None:
        if self.pos + n > self.size:
            self.grow(self.pos + n, self.pos)

    def grow(self, end: int, offset: int) -> None:
        """Make the buffer reach `end`, or raise `_Short` if it cannot."""
        target = end + self.rest_min
        if self.fetch is None or (self.total_size is not None and target > self.total_size):
            raise _Short(end, offset)
        self.buf = self.fetch(target)
        self.size = len(self.buf)

    def u32(self) -> int:
        self.need(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def u64(self) -> int:
        self.need(8)
        (value,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return value

    def string_length(self, limit: int, what: str) -> int:
        """Read a string's length prefix and make sure its bytes are in the buffer."""
        start = self.pos
        length = self.u64()
        if length > limit:
            raise GGUFError(f"{what} length {length} at offset {start} is absurd")
        self.need(length)
        return length

    def text(self, limit: int, what: str) -> str:
        length = self.string_length(limit, what)
        start = self.pos
        self.pos += length
        return str(self.buf[start : self.pos], "utf-8", "replace")

    def value_type(self, where: str) -> int:
        start = self.pos
        vtype = self.u32()
        if vtype not in _VALUE_TYPES:
            raise GGUFError(f"unknown value type {vtype} for {where} at offset {start}")
        return vtype

    # -- values ----------------------------------------------------------------------------

    def value(self, vtype: int, key: str) -> Any:
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            self.need(scalar.size)
            (value,) = scalar.unpack_from(self.buf, self.pos)
            self.pos += scalar.size
            return value
        if vtype == _ARRAY:
            return self.array(key)
        length = self.string_length(MAX_STRING_BYTES, "string")
        start = self.pos
        self.pos += length
        if length > METADATA_STRING_MAX:
            return f"<string of {length} bytes>"
        return str(self.buf[start : self.pos], "utf-8", "replace")

    def array(self, key: str) -> Any:
        item_type = self.value_type(f"array {key!r}")
        if item_type == _ARRAY:
            raise GGUFError(f"nested array in key {key!r} at offset {self.pos - 4} is not supported")
        start = self.pos
        count = self.u64()
        if count > MAX_ARRAY_LEN:
            raise GGUFError(f"array length {count} for key {key!r} at offset {start} is absurd")
        type_name = _VALUE_TYPES[item_type][0]
        scalar = _SCALARS.get(item_type)
        if scalar is None:  # strings
            if count <= METADATA_ARRAY_MAX:
                return [self.value(_STRING, key) for _ in range(count)]
            self.skip_strings(count)
            return f"<array of {count} {type_name}>"
        nbytes = count * scalar.size
        self.need(nbytes)
        if count > METADATA_ARRAY_MAX:
            self.pos += nbytes
            return f"<array of {count} {type_name}>"
        values = struct.unpack_from(f"<{count}{scalar.format[1:]}", self.buf, self.pos)
        self.pos += nbytes
        return list(values)

    def skip_strings(self, count: int) -> None:
        """Step over `count` length-prefixed strings without decoding them."""
        start = pos = self.pos
        walked = 0
        while True:
            buf, unpack = self.buf, _U64.unpack_from
            try:
                for walked in range(walked, count):
                    pos += 8 + unpack(buf, pos)[0]
                else:
                    walked = count
            except (struct.error, OverflowError):
                pass  # `pos` is past the end of the buffer (or of any buffer)
            # The total bounds every single length, so only a huge total can hide an absurd one.
            if pos - start - 8 * walked > MAX_STRING_BYTES:
                self.skip_strings_carefully(count)
                return
            needed = pos + 8 * (count - walked)  # each string not reached needs its length
            if needed <= self.size:
                self.pos = pos
                return
            self.grow(needed, min(pos, self.size))

    def skip_strings_carefully(self, count: int) -> None:
        """The slow walk, string by string, that names the first absurd length."""
        for index in range(count):
            try:
                length = self.string_length(MAX_STRING_BYTES, "string")
            except _Short as short:
                short.end += 8 * (count - index - 1)
                raise
            self.pos += length
