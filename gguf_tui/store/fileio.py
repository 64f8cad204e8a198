"""Reading store files without disturbing them: no access-time updates, streaming SHA-256.

"Last used" comes partly from a file's access time, so the store's own reads (scanning headers,
hashing for verify and import) open files with O_NOATIME where the kernel allows it (the file's
owner, or CAP_FOWNER); elsewhere they fall back to a plain open. Only regular files are opened
(`gguf_tui.fsutil.open_regular`): a FIFO planted in the store would block a read forever.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Callable

from gguf_tui.fsutil import open_regular
from gguf_tui.gguf import GGUFError, GGUFInfo
from gguf_tui.gguf.reader import read_gguf

HASH_BLOCK = 8 * 1024 * 1024
_CACHE_LIMIT = 1024
_CACHE_BYTES = 32 * 1024 * 1024  # the facts of several hundred real headers at least

# bytes done, total bytes
HashProgress = Callable[[int, int], None]


class HashCancelled(Exception):
    """A streaming hash was stopped through its stop event."""


def open_noatime(path: Path | str, flags: int = os.O_RDONLY) -> int:
    """An fd for reading the regular file `path`, leaving its access time alone where allowed.

    Anything but a regular file (a FIFO would block the read forever) raises
    `NotRegularFileError`, an OSError. `flags` is kept for callers; only reading is supported.
    """
    if flags & (os.O_WRONLY | os.O_RDWR):
        raise ValueError("open_noatime only opens files for reading")
    return open_regular(path, noatime=True)


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
    """The GGUF header facts of a local regular file, read without updating its access time."""
    return read_gguf(path, noatime=True)


# key -> (result, its weight), oldest first: eviction drops what was read longest ago
_header_cache: dict[tuple, tuple[GGUFInfo | GGUFError, int]] = {}
_cache_weight = 0
_cache_lock = threading.Lock()


def _weight(result: GGUFInfo | GGUFError) -> int:
    """Rough bytes a cached result holds: a store of crafted headers cannot fill memory."""
    if isinstance(result, GGUFError):
        return 256 + len(str(result))
    weight = 1024
    for key, value in result.metadata.items():
        weight += 100 + len(key)
        if isinstance(value, str):
            weight += len(value)
        elif isinstance(value, list):
            weight += sum(40 + (len(item) if isinstance(item, str) else 0) for item in value)
    return weight


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
            return _header_cache[key][0]
    try:
        result: GGUFInfo | GGUFError = read_header(path)
    except GGUFError as exc:
        result = exc
    global _cache_weight
    weight = _weight(result)
    with _cache_lock:
        old = _header_cache.pop(key, None)
        if old is not None:
            _cache_weight -= old[1]
        while _header_cache and (
            len(_header_cache) >= _CACHE_LIMIT or _cache_weight + weight > _CACHE_BYTES
        ):
            oldest = next(iter(_header_cache))
            _cache_weight -= _header_cache.pop(oldest)[1]
        _header_cache[key] = (result, weight)
        _cache_weight += weight
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
