"""The partial file of one download and its SHA-256, written and hashed off the event loop.

Bytes are written with `pwritev` at their offset on one writer thread (parallel buffered writes
to one file only fight over its inode lock). SHA-256 is computed once over the file in order on
one hasher thread: straight from memory for bytes that extend the hashed prefix, from the page
cache for ranges that completed out of order. Batches come from the event loop (aiohttp's
path) or, as 1 MiB blocks, straight from a socket-reading thread (`socketbody`). The hashed prefix is sent to disk early, in large
steps, on a third thread, so the fsync before placement has little left to do.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gguf_tui.engine.errors import ChecksumMismatch
from gguf_tui.engine.placement import DiskFullError, preallocate, start_writeback
from gguf_tui.fsutil import open_regular_for_writing

HASH_BLOCK = 4 * 1024 * 1024
WRITEBACK_EVERY = 64 * 1024 * 1024  # hashed bytes between two early-writeback requests


class PartialFile:
    """An open partial file: positioned writes, the hash of its prefix, early writeback."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label  # the file's name, for messages
        self._fd = -1
        self._sync_fd = -1
        self._hash = hashlib.sha256()
        self._hashed_upto = 0
        self._written_back = 0
        self._hash_lock = threading.Lock()
        self._hash_view: memoryview | None = None
        self._futures: set[asyncio.Future] = set()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="gguf-tui-write")
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="gguf-tui-hash")
        # Writeback requests can block on the disk queue: they get their own thread, and their
        # own descriptor which that thread closes after the last request, so neither writing,
        # hashing nor closing waits for them.
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="gguf-tui-sync")
        # One thread per connection that reads its body straight from the socket (socketbody).
        self._receivers = ThreadPoolExecutor(64, thread_name_prefix="gguf-tui-recv")

    @property
    def hashed(self) -> int:
        """Bytes from the start that are hashed."""
        return self._hashed_upto

    def open(self) -> None:
        self._fd = open_regular_for_writing(self.path)
        self._sync_fd = os.dup(self._fd)

    def reserve(self, size: int) -> None:
        """Preallocate the file to `size` bytes unless it is already that large."""
        if size > 0 and os.fstat(self._fd).st_size < size:
            preallocate(self._fd, size)

    def restart(self) -> None:
        """Empty the file and forget the hash (call with no write or hash in flight)."""
        with self._hash_lock:
            self._hash = hashlib.sha256()
            self._hashed_upto = 0
        self._written_back = 0
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    # ---- work on the threads ---------------------------------------------------------------

    async def write(self, offset: int, pieces: list[bytes]) -> None:
        await self._run(self._writer, self._write_pieces, offset, pieces)

    async def hash_received(self, offset: int, pieces: list[bytes]) -> None:
        """Hash pieces from memory if they start at the hashed prefix (in parallel with their
        write: hashlib releases the GIL on large buffers); otherwise they are hashed later from
        the file."""
        await self._run(self._hasher, self._hash_pieces, offset, pieces)

    async def hash_upto(self, limit: int) -> None:
        """Hash the file's bytes up to `limit` (they must be written)."""
        await self._run(self._hasher, self._hash_from_disk, limit)

    def start_receiving(self, receive_body) -> asyncio.Future:
        """Run a socket body's receiving loop on a thread; `drain` and `close` wait for it."""
        future = asyncio.get_running_loop().run_in_executor(self._receivers, receive_body)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def submit_write(self, offset: int, block: memoryview) -> Future:
        """(any thread) Queue a block's write on the writer thread."""
        return self._writer.submit(self._write_pieces, offset, [block])

    def submit_hash(self, offset: int, block: memoryview) -> Future:
        """(any thread) Queue a block for the hash; it is skipped unless it extends the hashed
        prefix when its turn comes (then it is hashed from the file later)."""
        return self._hasher.submit(self._hash_pieces, offset, [block])

    async def drain(self) -> None:
        """Wait for every write and hash in flight."""
        while self._futures:
            await asyncio.wait(list(self._futures))

    async def close(self) -> None:
        if self._sync_fd >= 0:
            self._syncer.submit(os.close, self._sync_fd)  # after any writeback still queued
            self._sync_fd = -1
        self._syncer.shutdown(wait=False)
        await self.drain()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._writer.shutdown(wait=False)
        self._hasher.shutdown(wait=False)
        self._receivers.shutdown(wait=False)

    async def _run(self, executor: ThreadPoolExecutor, func, *args) -> None:
        future = asyncio.get_running_loop().run_in_executor(executor, func, *args)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        await future

    def _write_pieces(self, offset: int, pieces: list[bytes]) -> None:
        """(writer thread) Write pieces at offset."""
        position = offset
        views = [memoryview(p) for p in pieces]
        try:
            while views:
                written = os.pwritev(self._fd, views, position)
                if written <= 0 and any(len(view) for view in views):
                    # Never loop on a write that moves nothing on (practice 14).
                    raise OSError(errno.EIO, f"write of {self.label} made no progress")
                position += written
                while views and written >= len(views[0]):
                    written -= len(views[0])
                    views.pop(0)
                if views and written:
                    views[0] = views[0][written:]
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"disk full while writing {self.label}") from None
            raise

    def _hash_pieces(self, offset: int, pieces: list[bytes]) -> None:
        """(hasher thread)"""
        with self._hash_lock:
            if self._hashed_upto == offset:
                for piece in pieces:
                    self._hash.update(piece)
                    self._hashed_upto += len(piece)
        self._writeback_hashed()

    def _hash_from_disk(self, limit: int) -> None:
        """(hasher thread) Hash [hashed_upto, limit) from the file, usually in the page cache."""
        if self._hash_view is None:  # one buffer per file
            self._hash_view = memoryview(bytearray(HASH_BLOCK))
        view = self._hash_view
        while True:
            start = self._hashed_upto
            if start >= limit:
                return
            count = os.preadv(self._fd, [view[: min(HASH_BLOCK, limit - start)]], start)
            if count <= 0:
                raise ChecksumMismatch("partial file ended early while hashing")
            with self._hash_lock:
                if self._hashed_upto != start:
                    continue  # an inline hash moved the prefix; re-read from there
                self._hash.update(view[:count])
                self._hashed_upto = start + count
            self._writeback_hashed()

    def _writeback_hashed(self) -> None:
        """(hasher thread) Send the hashed prefix to disk in large steps while downloading."""
        if self._hashed_upto - self._written_back >= WRITEBACK_EVERY:
            start, end = self._written_back, self._hashed_upto
            self._written_back = end
            try:
                self._syncer.submit(start_writeback, self._sync_fd, start, end - start)
            except RuntimeError:
                pass  # closing; writeback is only a head start for the fsync
