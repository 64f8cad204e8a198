"""Reading store files without disturbing them: no access-time updates, streaming SHA-256.

"Last used" comes partly from a file's access time, so the store's own reads (scanning headers,
hashing for verify and import) open files with O_NOATIME where the kernel allows it (the file's
owner, or CAP_FOWNER); elsewhere they fall back to a plain open.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Callable

from gguf_tui.gguf import GGUFError, GGUFInfo, GGUFTruncated, parse_gguf_bytes

HASH_BLOCK = 8 * 1024 * 1024
_FIRST_READ = 1 << 20
_CACHE_LIMIT = 1024

# bytes done, total bytes
HashProgress = Callable[[int, int], None]


class HashCancelled(Exception):
    """A streaming hash was stopped through its stop event."""


def open_noatime(path: Path | str, flags: int = os.O_RDONLY) -> int:
    """An fd for reading `path` that leaves its access time alone where the kernel allows."""
    noatime = getattr(os, "O_NOATIME", 0)
    if noatime:
        try:
            return os.open(path, flags | noatime)
        except PermissionError:
            pass  # O_NOATIME needs ownership; another user's file is read normally
    return os.open(path, flags)


def sha256_file(
    path: Path | str,
    *,
    progress: HashProgress | None = None,
    stop: threading.Event | None = None,
    progress_every: float = 0.25,
) -> str:
    """SHA-256 of a file read in blocks; `progress` is called at most every `progress_every` s."""
    fd = open_noatime(path)
    try:
        total = os.fstat(fd).st_size
        digest = hashlib.sha256()
        done = 0
        last = 0.0
        while True:
            if stop is not None and stop.is_set():
                raise HashCancelled(f"stopped hashing {path}")
            block = os.read(fd, HASH_BLOCK)
            if not block:
                break
            digest.update(block)
            done += len(block)
            now = time.monotonic()
            if progress is not None and now - last >= progress_every:
                last = now
                progress(done, total)
        if progress is not None:
            progress(done, total)
        return digest.hexdigest()
    finally:
        os.close(fd)


def read_header(path: Path | str) -> GGUFInfo:
    """The GGUF header facts of a local file, read without updating its access time."""
    display = os.fspath(path)
    try:
        fd = open_noatime(path)
    except OSError as exc:
        raise GGUFError(f"{display}: cannot read: {exc.strerror or exc}") from None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise GGUFError(f"{display}: empty file, not a GGUF file")
        data = bytearray(os.pread(fd, min(size, _FIRST_READ), 0))
        while True:
            try:
                return parse_gguf_bytes(data, total_size=size)
            except GGUFTruncated as short:
                want = min(size, max(short.needed, 2 * len(data)))
                more = os.pread(fd, want - len(data), len(data)) if want > len(data) else b""
                if not more:
                    raise GGUFError(
                        f"{display}: file shrank while its header was being read"
                    ) from None
                data.extend(more)
            except GGUFError as exc:
                raise GGUFError(f"{display}: {exc}") from None
    except OSError as exc:
        raise GGUFError(f"{display}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


_header_cache: dict[tuple, GGUFInfo | GGUFError] = {}
_cache_lock = threading.Lock()


def cached_header(path: Path, stat: os.stat_result | None = None) -> GGUFInfo | GGUFError:
    """`read_header`, remembered per (device, inode, size, mtime): repeated scans stay cheap.

    Returns the error instead of raising it, so a scan lists a broken file rather than stopping.
    """
    try:
        stat = stat or path.stat()
    except OSError as exc:
        return GGUFError(f"{path}: cannot read: {exc.strerror or exc}")
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _header_cache:
            return _header_cache[key]
    try:
        result: GGUFInfo | GGUFError = read_header(path)
    except GGUFError as exc:
        result = exc
    with _cache_lock:
        if len(_header_cache) >= _CACHE_LIMIT:
            _header_cache.clear()
        _header_cache[key] = result
    return result


def is_complete_gguf(path: Path) -> bool:
    """True when `path` holds a whole GGUF file: a valid header and every tensor's bytes."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    info = cached_header(path)
    if isinstance(info, GGUFError):
        return False
    return info.min_file_size is None or size >= info.min_file_size
