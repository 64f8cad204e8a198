"""Disk space checks, preallocation, and moving a verified file into place durably."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path

from gguf_tui.engine.errors import DiskFullError
from gguf_tui.fsutil import fsync_dir, make_folders, open_regular

WILLNEED_BYTES = 64 * 1024 * 1024


def free_space(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


SYNC_FILE_RANGE_WRITE = 2


def _libc_sync_file_range():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _libc_sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a finished range to disk now, without waiting, so that the fsync before
    placement has little left to do (Linux; elsewhere the final fsync does all of it)."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def check_free_space(root: Path, needed: int, margin: int) -> None:
    """Raise DiskFullError unless `needed` bytes plus the margin fit on root's filesystem."""
    free = free_space(root)
    if needed and needed + margin > free:
        from gguf_tui.units import format_size

        raise DiskFullError(
            f"not enough disk space: needs {format_size(needed)} plus a "
            f"{format_size(margin)} margin, {format_size(free)} free on {root}"
        )


def preallocate(fd: int, size: int) -> bool:
    """Reserve `size` bytes for the file; False where the filesystem cannot (it still works)."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return False
    try:
        os.posix_fallocate(fd, 0, size)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError("disk full while reserving space for the download") from None
        return False  # EOPNOTSUPP, EINVAL on some filesystems: fine, just not reserved


def place_file(partial: Path, dest: Path) -> None:
    """fsync the verified partial, rename it into place atomically, fsync the directory."""
    sync_file(partial)
    rename_into_place(partial, dest)


def sync_file(path: Path) -> None:
    """Make the file's bytes durable before anything (a manifest, a rename) refers to them."""
    fd = open_regular(path, follow_symlinks=False)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rename_into_place(partial: Path, dest: Path) -> None:
    """Rename an already-synced partial to dest atomically (replacing a corrupt copy), durably."""
    make_folders(dest.parent)  # owner/repo/: group-shared in a shared store, as the root
    os.replace(partial, dest)
    fsync_dir(dest.parent)
    if partial.parent != dest.parent:
        fsync_dir(partial.parent)


def hint_page_cache(path: Path, length: int = WILLNEED_BYTES) -> None:
    """Ask the kernel to read the start of the model so llama.cpp's first load starts fast."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = open_regular(path)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)
