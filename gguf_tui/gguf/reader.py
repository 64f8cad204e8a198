"""Parse a GGUF header (KVs and tensor infos) from bytes or a local file, with guard limits.

The header is: magic, version, tensor count, KV count, the metadata key/values, then one info
record per tensor (name, shape, ggml type, offset); tensor data starts at the next multiple of
the alignment. Big arrays (a 150k-token vocabulary) are skipped by walking their length
prefixes or by arithmetic, never decoded into Python objects, and a local file is read through a
small window, so long strings and arrays are stepped over without being read. Every length and
count read from the file is bounded before use, and the header as a whole by `MAX_HEADER_BYTES`
(the same for local files and remote prefixes): a malformed or hostile file gives a one-line
`GGUFError`, never a crash, a hang or a giant allocation, whatever its counts claim.
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from typing import Any, Callable

from gguf_tui.fsutil import open_regular
from gguf_tui.gguf.info import GGUFInfo, TensorBytes, build_info
from gguf_tui.gguf.types import ggml_nbytes

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Guard limits. Real headers are a few MB (the biggest vocabularies, ~260k tokens plus ~300k
# merges, take ~10 MB; chat templates tens of KB; ~50 keys; a few thousand tensors), so these
# are many times what a real file needs, and small enough that no header, whatever its counts
# claim, makes the reader use more than a few MB of memory or more than about a second.
MAX_HEADER_BYTES = 64 * 1024 * 1024  # everything before the tensor data
MAX_STRING_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024
MAX_KV_COUNT = 1 << 16
MAX_KEYS_TOTAL_BYTES = 4 * 1024 * 1024  # all keys together (held for the duplicate check)
MAX_TENSOR_COUNT = 1 << 18
MAX_ARRAY_LEN = 1 << 24
MAX_ARRAY_STRINGS = 1 << 22  # strings walked across all arrays of one header
MAX_DIMS = 8

# What the metadata dict keeps verbatim; anything bigger becomes a short placeholder. The totals
# bound what a `GGUFInfo` holds (it is cached per file): keys past them are counted, not kept.
METADATA_STRING_MAX = 16 * 1024
METADATA_ARRAY_MAX = 32
METADATA_KEEP_KEYS = 512
METADATA_KEEP_BYTES = 64 * 1024
# The architecture's hyper-parameters (`<arch>.*`: layer count, head counts, key lengths, sliding
# window...) are what a memory estimate needs, so they are preferred: other keys (tokenizer data,
# custom keys) may only fill the budget up to these reserves, and a hyper-parameter array may
# hold one value per layer (`<arch>.attention.head_count_kv` is per layer in many models).
METADATA_RESERVED_KEYS = 128
METADATA_RESERVED_BYTES = 32 * 1024
METADATA_LAYER_ARRAY_MAX = 4096
# Blocks whose tensor bytes are counted one by one (more than any real model has; a crafted
# header naming more is counted in the rest, so the per-block table stays small).
MAX_BLOCKS_COUNTED = 4096

# A local file is read through a window of this size: memory stays flat however long the header
# is, and long strings and arrays are stepped over without reading them.
_WINDOW = 1 << 20
# A pass of the fast string walk; a bad length found after it re-walks at most this many slowly.
_STRINGS_PER_PASS = 1 << 16

_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, KV count
_MIN_KV_SIZE = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_INFO_SIZE = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_TYPE_AND_OFFSET = struct.Struct("<IQ")
_DIMS = [struct.Struct(f"<{n}Q") for n in range(MAX_DIMS + 1)]

# GGUF value types: id -> (short name, struct format, or None for string and array).
_STRING, _ARRAY = 8, 9
_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("u8", "B"), 1: ("i8", "b"), 2: ("u16", "H"), 3: ("i16", "h"), 4: ("u32", "I"),
    5: ("i32", "i"), 6: ("f32", "f"), 7: ("bool", "?"), _STRING: ("str", None),
    _ARRAY: ("array", None), 10: ("u64", "Q"), 11: ("i64", "q"), 12: ("f64", "d"),
}  # fmt: skip
_SCALARS = {vtype: struct.Struct("<" + fmt) for vtype, (_, fmt) in _VALUE_TYPES.items() if fmt}

# bytes at (offset, length) of a file; fewer only at its end
ReadAt = Callable[[int, int], bytes]


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
    bound on the prefix length, always more than `len(data)` and never more than
    `MAX_HEADER_BYTES`, that lets parsing get further. Pass `total_size` (the whole file's size,
    e.g. from Content-Range) to have counts that cannot fit rejected early and a header longer
    than the file reported as a `GGUFError`.
    """
    buf = data
    if isinstance(data, memoryview) and (data.format != "B" or data.ndim != 1):
        buf = data.cast("B")
    return _Parser(buf, total_size).parse()


def read_gguf(path: str | os.PathLike[str], *, noatime: bool = False) -> GGUFInfo:
    """Read a local GGUF file's header, which must be a regular file (a FIFO would block).

    `noatime` leaves the file's access time alone (the store's scans must not count as use)."""
    display = os.fspath(path)
    try:
        fd = open_regular(path, noatime=noatime)
    except OSError as error:
        raise GGUFError(f"{display}: cannot read: {error.strerror or error}") from None
    try:
        return read_gguf_fd(fd, display)
    finally:
        os.close(fd)


def read_gguf_fd(fd: int, display: str) -> GGUFInfo:
    """Read the header of the open regular file `fd`; errors name the file as `display`.

    Positioned reads (pread) through a 1 MiB window rather than mmap: a file truncated by
    another process while mapped would kill the process with SIGBUS, and only the records are
    read, never the long strings and arrays they step over.
    """
    try:
        file_size = os.fstat(fd).st_size
        if file_size == 0:
            raise GGUFError("empty file, not a GGUF file")
        return _Parser(b"", file_size, lambda offset, length: os.pread(fd, length, offset)).parse()
    except GGUFError as error:
        raise GGUFError(f"{display}: {error}") from None
    except OSError as error:
        raise GGUFError(f"{display}: cannot read: {error.strerror or error}") from None


class _Parser:
    """One pass over a header, held whole in a bytes-like buffer or read through a window.

    Positions are file offsets; `buf` holds the bytes [base, end). With `read_at` (a local
    file of `total_size` bytes) the window moves forward as the parse goes; without it, a read
    past the buffer raises `_Short`, which becomes `GGUFTruncated` with how much to fetch.
    """

    def __init__(self, buf: Any, total_size: int | None, read_at: ReadAt | None = None) -> None:
        self.buf = buf
        self.base = 0
        self.end = len(buf)
        self.total_size = total_size
        self.read_at = read_at
        # Reads below `stop` need no check: in the buffer and within the header budget.
        self.stop = min(self.end, MAX_HEADER_BYTES)
        self.pos = 0
        # Lower bound on the bytes the header still needs after the current record.
        self.rest_min = 0
        self.kept_bytes = 0
        self.keep_limit = METADATA_KEEP_BYTES  # bytes the current key may fill the budget up to
        self.array_max = METADATA_ARRAY_MAX  # longest array the current key may keep
        self.strings_walked = 0
        # Bytes of tensor data per block (`blk.N.*`) and outside blocks; None if a type is unknown.
        self.layer_bytes: dict[int, int] | None = {}
        self.other_bytes: int | None = 0
        self.input_bytes = 0
        self.has_output = False

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
            if needed > MAX_HEADER_BYTES:
                raise self.too_long(short.offset) from None
            raise GGUFTruncated(
                f"truncated GGUF header at offset {short.offset} "
                f"(have {self.end} bytes, need at least {needed})",
                needed=needed,
            ) from None

    def too_long(self, offset: int) -> GGUFError:
        return GGUFError(
            f"the GGUF header goes on past {MAX_HEADER_BYTES >> 20} MiB (at offset {offset}); "
            f"real headers are a few MB, so this file is not read"
        )

    def _parse(self) -> GGUFInfo:
        if self.read_at is not None and self.total_size:
            self.need(min(len(GGUF_MAGIC), self.total_size))
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
        least = _HEADER.size + kv_count * _MIN_KV_SIZE + tensor_count * _MIN_TENSOR_INFO_SIZE
        if self.total_size is not None and least > self.total_size:
            raise GGUFError(
                f"KV count {kv_count} and tensor count {tensor_count} need at least "
                f"{least} bytes but the file has {self.total_size} (truncated or corrupt)"
            )
        if least > MAX_HEADER_BYTES:
            raise self.too_long(_HEADER.size)

        metadata, alignment = self.read_metadata(kv_count, tensor_count)
        if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
            raise GGUFError(f"general.alignment {alignment!r} is not a power of two")
        return self.read_tensor_infos(metadata, alignment, version, tensor_count, kv_count)

    def read_metadata(self, kv_count: int, tensor_count: int) -> tuple[dict[str, Any], Any]:
        """The KVs: every key checked, the first `METADATA_KEEP_KEYS` kept with their values."""
        metadata: dict[str, Any] = {}
        alignment: Any = DEFAULT_ALIGNMENT
        keys_seen: set[str] = set()
        key_bytes = 0
        hyper_prefix: str | None = None
        for index in range(kv_count):
            self.rest_min = (kv_count - index - 1) * _MIN_KV_SIZE
            self.rest_min += tensor_count * _MIN_TENSOR_INFO_SIZE
            key_offset = self.pos
            key = self.text(MAX_KEY_BYTES, "key")
            if key in keys_seen:
                raise GGUFError(f"duplicate key {key!r} at offset {key_offset}")
            key_bytes += len(key)
            if key_bytes > MAX_KEYS_TOTAL_BYTES:
                raise GGUFError(
                    f"the metadata keys take more than {MAX_KEYS_TOTAL_BYTES >> 20} MiB "
                    f"(at offset {key_offset}): not a real model header"
                )
            keys_seen.add(key)
            hyper = hyper_prefix is not None and key.startswith(hyper_prefix)
            self.keep_limit = METADATA_KEEP_BYTES if hyper else (
                METADATA_KEEP_BYTES - METADATA_RESERVED_BYTES
            )
            self.array_max = METADATA_LAYER_ARRAY_MAX if hyper else METADATA_ARRAY_MAX
            key_limit = METADATA_KEEP_KEYS if hyper else METADATA_KEEP_KEYS - METADATA_RESERVED_KEYS
            keep = len(metadata) < key_limit and self.keep(len(key))
            value = self.value(self.value_type(f"key {key!r}"), key, keep)
            if key == "general.alignment":
                alignment = value
            if key == "general.architecture" and isinstance(value, str) and hyper_prefix is None:
                hyper_prefix = value + "."
            if keep:
                metadata[key] = value
        return metadata, alignment

    def read_tensor_infos(
        self, metadata: dict[str, Any], alignment: int, version: int, tensor_count: int,
        kv_count: int,
    ) -> GGUFInfo:
        """Step over the tensor infos, adding up element counts and where the data ends.

        Names are not decoded (only for an error message): with up to a million infos, each
        record is a few unpacks on the window.
        """
        matrix_elements_by_type: Counter[int] = Counter()
        element_total = 0
        data_end: int | None = 0
        for index in range(tensor_count):
            self.rest_min = (tensor_count - index - 1) * _MIN_TENSOR_INFO_SIZE
            info_offset = self.pos
            self.need(8)
            name_length = _U64.unpack_from(self.buf, self.pos - self.base)[0]
            if name_length > MAX_KEY_BYTES:
                raise GGUFError(
                    f"tensor name length {name_length} at offset {info_offset} is absurd"
                )
            self.need(8 + name_length + 4)
            at = self.pos - self.base + 8 + name_length
            n_dims = _U32.unpack_from(self.buf, at)[0]
            if n_dims > MAX_DIMS:
                name = str(self.buf[at - name_length : at], "utf-8", "replace")
                raise GGUFError(f"tensor {name!r} at offset {info_offset} has {n_dims} dimensions")
            record = 8 + name_length + 4 + 8 * n_dims + _TYPE_AND_OFFSET.size
            self.need(record)
            at = self.pos - self.base + 8 + name_length + 4
            dims = _DIMS[n_dims].unpack_from(self.buf, at)
            ggml_type, offset = _TYPE_AND_OFFSET.unpack_from(self.buf, at + 8 * n_dims)
            self.pos += record
            elements = math.prod(dims)
            if elements >= 1 << 63:
                name = str(self.buf[at - 4 - name_length : at - 4], "utf-8", "replace")
                raise GGUFError(f"tensor {name!r} at offset {info_offset} has absurd shape {dims}")
            element_total += elements
            # Only matrices count for the quantisation: llama.cpp keeps 1-D tensors in F32.
            if n_dims >= 2:
                matrix_elements_by_type[ggml_type] += elements
            nbytes = ggml_nbytes(ggml_type, dims)
            if data_end is not None:
                data_end = None if nbytes is None else max(data_end, offset + nbytes)
            name_at = at - 4 - name_length
            self.count_tensor_bytes(bytes(self.buf[name_at : name_at + min(name_length, 16)]), nbytes)
        self.rest_min = 0
        self.need(0)  # the header's last byte must be there (a skipped string can end it)

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
            tensor_bytes=None if self.layer_bytes is None or self.other_bytes is None else TensorBytes(
                layers=dict(sorted(self.layer_bytes.items())), other=self.other_bytes,
                input=self.input_bytes, has_output=self.has_output,
            ),
        )

    def count_tensor_bytes(self, name_head: bytes, nbytes: int | None) -> None:
        """Add a tensor's data size to its block (`blk.N.`) or to the rest (embeddings, output)."""
        if nbytes is None or self.layer_bytes is None or self.other_bytes is None:
            self.layer_bytes = self.other_bytes = None
            return
        if name_head.startswith(b"blk."):
            digits = name_head[4:].split(b".", 1)[0]
            if digits.isdigit() and len(digits) <= 4 and int(digits) < MAX_BLOCKS_COUNTED:
                block = int(digits)
                self.layer_bytes[block] = self.layer_bytes.get(block, 0) + nbytes
                return
        self.other_bytes += nbytes
        if name_head.startswith(b"token_embd."):
            self.input_bytes += nbytes
        elif name_head == b"output.weight":
            self.has_output = True

    def check_count(self, what: str, count: int, limit: int, offset: int) -> None:
        if count > limit:
            raise GGUFError(f"{what} {count} at offset {offset} is absurd (limit {limit})")

    def keep(self, nbytes: int) -> bool:
        """Whether `nbytes` more of metadata fit what a `GGUFInfo` keeps (and count them if so)."""
        if self.kept_bytes + nbytes > self.keep_limit:
            return False
        self.kept_bytes += nbytes
        return True

    # -- primitives ------------------------------------------------------------------------

    def need(self, n: int) -> None:
        """Make bytes [pos, pos + n) readable at `buf[pos - base:]`."""
        if self.pos + n > self.stop:
            self.refill(n)

    def refill(self, n: int) -> None:
        """Move the window to `pos`, or raise: truncated, past the budget, or `_Short`."""
        end = self.pos + n
        if self.total_size is not None and end + self.rest_min > self.total_size:
            raise _Short(end, min(self.pos, self.total_size))
        if end + self.rest_min > MAX_HEADER_BYTES:
            raise self.too_long(self.pos)
        if end <= self.end:
            return  # in the buffer, and within the budget
        if self.read_at is None:
            raise _Short(end, min(self.pos, self.end))
        assert self.total_size is not None  # a file always has one
        length = min(max(n, _WINDOW), self.total_size - self.pos)
        data = self.read_at(self.pos, length)
        if len(data) < n:
            raise GGUFError("file shrank while its header was being read")
        self.buf, self.base, self.end = data, self.pos, self.pos + len(data)
        self.stop = min(self.end, MAX_HEADER_BYTES)

    def skip(self, n: int) -> None:
        """Step over `n` bytes without reading them; the next read checks they existed."""
        self.pos += n

    def u32(self) -> int:
        self.need(4)
        (value,) = _U32.unpack_from(self.buf, self.pos - self.base)
        self.pos += 4
        return value

    def u64(self) -> int:
        self.need(8)
        (value,) = _U64.unpack_from(self.buf, self.pos - self.base)
        self.pos += 8
        return value

    def string_length(self, limit: int, what: str) -> int:
        """Read a string's length prefix, bounded by `limit`."""
        start = self.pos
        length = self.u64()
        if length > limit:
            raise GGUFError(f"{what} length {length} at offset {start} is absurd")
        return length

    def text(self, limit: int, what: str) -> str:
        length = self.string_length(limit, what)
        self.need(length)
        start = self.pos - self.base
        self.pos += length
        return str(self.buf[start : start + length], "utf-8", "replace")

    def value_type(self, where: str) -> int:
        start = self.pos
        vtype = self.u32()
        if vtype not in _VALUE_TYPES:
            raise GGUFError(f"unknown value type {vtype} for {where} at offset {start}")
        return vtype

    # -- values ----------------------------------------------------------------------------

    def value(self, vtype: int, key: str, keep: bool) -> Any:
        """The value at `pos`; strings and arrays are only decoded when `keep` is true."""
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            self.need(scalar.size)
            (value,) = scalar.unpack_from(self.buf, self.pos - self.base)
            self.pos += scalar.size
            return value
        if vtype == _ARRAY:
            return self.array(key, keep)
        length = self.string_length(MAX_STRING_BYTES, "string")
        if length > METADATA_STRING_MAX or not keep or not self.keep(length):
            self.skip(length)
            return f"<string of {length} bytes>"
        return self.text_of(length)

    def text_of(self, length: int) -> str:
        self.need(length)
        start = self.pos - self.base
        self.pos += length
        return str(self.buf[start : start + length], "utf-8", "replace")

    def array(self, key: str, keep: bool) -> Any:
        item_type = self.value_type(f"array {key!r}")
        if item_type == _ARRAY:
            raise GGUFError(f"nested array in key {key!r} at offset {self.pos - 4} is not supported")
        start = self.pos
        count = self.u64()
        if count > MAX_ARRAY_LEN:
            raise GGUFError(f"array length {count} for key {key!r} at offset {start} is absurd")
        type_name = _VALUE_TYPES[item_type][0]
        placeholder = f"<array of {count} {type_name}>"
        scalar = _SCALARS.get(item_type)
        if scalar is None:  # strings
            self.strings_walked += count
            if self.strings_walked > MAX_ARRAY_STRINGS:
                raise GGUFError(
                    f"the arrays hold more than {MAX_ARRAY_STRINGS} strings in all (key {key!r} "
                    f"at offset {start}): not a real model header"
                )
            if keep and count <= METADATA_ARRAY_MAX:
                return [self.value(_STRING, key, keep) for _ in range(count)]
            self.skip_strings(count)
            return placeholder
        nbytes = count * scalar.size
        if not keep or count > self.array_max or not self.keep(nbytes):
            self.skip(nbytes)
            return placeholder
        self.need(nbytes)
        values = struct.unpack_from(f"<{count}{scalar.format[1:]}", self.buf, self.pos - self.base)
        self.pos += nbytes
        return list(values)

    def skip_strings(self, count: int) -> None:
        """Step over `count` length-prefixed strings without decoding them.

        Walks the length prefixes in the window as fast as Python can (a 150k-token vocabulary
        in milliseconds); a pass that jumps past the budget or the file is walked again string
        by string to name the first bad length.
        """
        outer_rest = self.rest_min
        remaining = count
        limit = MAX_HEADER_BYTES
        if self.total_size is not None:
            limit = min(limit, self.total_size)
        unpack = _U64.unpack_from
        while remaining:
            # Each string not walked yet needs at least its length prefix.
            self.rest_min = outer_rest + 8 * (remaining - 1)
            self.need(8)
            buf, base, pass_start = self.buf, self.base, self.pos
            at = pass_start - base
            batch = min(remaining, _STRINGS_PER_PASS)
            walked = 0
            try:
                for walked in range(batch):
                    at += 8 + unpack(buf, at)[0]
                else:
                    walked = batch
            except (struct.error, OverflowError):
                pass  # `at` is past the end of the window (or of any buffer)
            left = remaining - walked
            if base + at + 8 * left + outer_rest > limit:
                self.skip_strings_carefully(batch, outer_rest + 8 * (remaining - batch))
                self.rest_min = outer_rest
                remaining -= batch
                continue
            self.pos = base + at
            remaining = left
        self.rest_min = outer_rest

    def skip_strings_carefully(self, count: int, outer_rest: int) -> None:
        """The slow walk, string by string, that names the first absurd length."""
        for index in range(count):
            self.rest_min = outer_rest + 8 * (count - index - 1)
            length = self.string_length(MAX_STRING_BYTES, "string")
            self.skip(length)
        self.rest_min = outer_rest
