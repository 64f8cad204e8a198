"""The body of a plain-HTTP answer read straight from its socket on a thread, into the partial.

Through aiohttp, a body reaches the event loop in socket-sized chunks (64-256 KiB), and each
chunk costs Python work on the loop (the read timeout re-armed, the parser, the stream reader's
waiter, a task step, batch bookkeeping): measured, about as much CPU as copying the bytes. Here,
once the headers are in, the connection's reading is paused on the loop and one thread receives
the body in 1 MiB blocks (`MSG_WAITALL`, into reused buffers, so a block costs one receive, one
write and one hash whatever the chunk size). Blocks go to the partial's writer and hasher
threads; the loop hears once per written block. HTTPS answers are taken the same way, with
their decryption (tlsbody.py); chunked bodies and rate-limited downloads keep aiohttp's path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import aiohttp

from gguf_tui.engine.partial import PartialFile
from gguf_tui.engine.segments import Segment

BLOCK = 1024 * 1024  # bytes per receive: still in the CPU cache when written and hashed
# Written blocks are reported to the loop together: each report wakes the loop and its hash
# loop, so one per block would be most of the loop's work. Progress still moves 10 times a
# second on slow links, and the resume state only ever lags behind the disk.
REPORT_BYTES = 4 * BLOCK
REPORT_EVERY = 0.1  # seconds
WAIT_STEP = 1.0  # seconds a blocked receive waits at most before it reads the stall clock
NO_BUFFER = -1  # `_settle(until_free=NO_BUFFER)`: wait for no block, report the finished ones


def open_transport_of_sized_body(response: aiohttp.ClientResponse) -> asyncio.Transport | None:
    """The open transport of an answer whose body has a length and no chunked framing, the
    only kind a thread can read to its end by counting bytes; None for any other."""
    if response.content_length is None or "Transfer-Encoding" in response.headers:
        return None
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if transport is None or transport.is_closing():
        return None
    return transport


def take_socket(response: aiohttp.ClientResponse) -> tuple[socket.socket, bytes] | None:
    """A blocking duplicate of a plain-HTTP answer's socket, with the loop's reading of it
    stopped, and the body bytes aiohttp had already buffered; None where the body must stay
    with aiohttp (TLS, no Content-Length, chunked). The connection must be closed afterwards:
    aiohttp's parser never sees the rest of the body, so it cannot be reused."""
    transport = open_transport_of_sized_body(response)
    if transport is None:
        return None
    if transport.get_extra_info("sslcontext") or transport.get_extra_info("ssl_object"):
        return None
    raw = transport.get_extra_info("socket")
    if raw is None or raw.type != socket.SOCK_STREAM:
        return None
    # Take what is buffered first (taking it may resume reading), then stop the loop's reading;
    # no callback runs in between, so no byte can slip into aiohttp's buffer afterwards.
    buffered = response.content.read_nowait()
    response.connection.protocol.pause_reading()  # also drops aiohttp's per-read timeout timer
    sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
    sock.setblocking(True)  # shared with the paused transport, which never reads again
    return sock, buffered


@dataclass
class _Block:
    """A received block on its way to disk and into the hash."""

    buffer: int | None  # which of the two buffers holds it (None: aiohttp's buffered bytes)
    start: int
    end: int
    write: concurrent.futures.Future
    hash: concurrent.futures.Future | None


class SocketBody:
    """Receives one answer's body from `segment.received` into the partial, on its own thread."""

    def __init__(
        self,
        sock: socket.socket,
        buffered: bytes,
        partial: PartialFile,
        segment: Segment,
        body_end: int,
        stop_at: int | None,
        stall_timeout: float,
        buffers: tuple[bytearray, bytearray],
        on_written: Callable[[int, int], None],
        hand_back: Callable[[], bool],
    ) -> None:
        self.sock = sock
        self.buffered = buffered
        self.partial = partial
        self.segment = segment
        self.body_end = body_end
        self.stop_at = stop_at
        self.stall_timeout = stall_timeout
        self.buffers = buffers
        self.on_written = on_written  # told of written ranges, in order, from this thread
        self.hand_back = hand_back  # true when the loop must read the rest (a rate limit)
        self.position = segment.received  # received up to here
        self.written_upto = segment.received  # written up to here
        self._reported_upto = segment.received
        self._reported_at = time.monotonic()
        self.handed_back = False
        self._in_flight: deque[_Block] = deque()
        self._stopping = False
        self._lock = threading.Lock()
        # A blocked receive returns after `step` seconds without data, to read the stall clock.
        step = min(WAIT_STEP, max(0.05, stall_timeout / 4))
        timeval = struct.pack("ll", int(step), int((step - int(step)) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)

    def limit(self) -> int:
        """Where receiving stops: the body's end, the request's, or a shrunk segment's."""
        limit = self.body_end
        if self.stop_at is not None:
            limit = min(limit, self.stop_at)
        if self.segment.end is not None:
            limit = min(limit, self.segment.end)
        return limit

    def stop(self) -> None:
        """(any thread) End a blocked receive now; the thread then returns."""
        with self._lock:
            self._stopping = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer

    def run(self) -> int:
        """(receiving thread) Receive, write and hash until the limit, the end of the body, a
        stop or a failure; returns the offset written up to."""
        chained = False  # the previous block went to the hasher: this one extends its prefix
        turn = 0
        try:
            if self.buffered:
                chained = self._hand_off(None, memoryview(self.buffered), chained)
            while not self._stopping and not self.hand_back():
                self._settle(until_free=turn)
                want = min(BLOCK, self.limit() - self.position)
                if want <= 0:
                    break
                # Stealing never splits below this mark, so what is received stays ours.
                self.segment.reading_to = self.position + want
                count = self._receive(memoryview(self.buffers[turn])[:want])
                if count == 0 and not self._stopping:
                    # aiohttp says the same of a body cut short of its Content-Length.
                    raise ConnectionResetError("connection dropped mid-transfer")
                if count == 0:
                    break
                chained = self._hand_off(turn, memoryview(self.buffers[turn])[:count], chained)
                turn ^= 1
            self.handed_back = not self._stopping and self.hand_back()
            self._settle(until_free=None)
        finally:
            self._settle_after_failure()
            self.sock.close()
            self._report(force=True)
        return self.written_upto

    def _report(self, force: bool = False) -> None:
        """Tell the loop what was written since the last report, when enough is or at the end."""
        unreported = self.written_upto - self._reported_upto
        if unreported <= 0:
            return
        now = time.monotonic()
        if force or unreported >= REPORT_BYTES or now - self._reported_at >= REPORT_EVERY:
            self.on_written(self._reported_upto, self.written_upto)
            self._reported_upto = self.written_upto
            self._reported_at = now

    def _settle_after_failure(self) -> None:
        """Wait for every block in flight and report the writes that succeeded, in order, so
        a dropped connection keeps what it delivered."""
        concurrent.futures.wait(
            [f for block in self._in_flight for f in (block.write, block.hash) if f]
        )
        while self._in_flight:
            block = self._in_flight.popleft()
            if block.write.cancelled() or block.write.exception() is not None:
                self._in_flight.clear()
                return
            self.written_upto = block.end

    def _settle(self, until_free: int | None) -> None:
        """Report finished writes in order; wait for the blocks up to the one that holds buffer
        `until_free` (None: all of them; NO_BUFFER: none). A failed write or hash raises here."""
        while self._in_flight:
            block = self._in_flight[0]
            must_wait = until_free is None or until_free in (b.buffer for b in self._in_flight)
            finished = block.write.done() and (block.hash is None or block.hash.done())
            if not must_wait and not finished:
                return
            block.write.result()
            self.written_upto = block.end
            self._report()
            if block.hash is not None:
                block.hash.result()
            self._in_flight.popleft()

    def _receive(self, view: memoryview) -> int:
        """One block, or less when the sender pauses for WAIT_STEP; 0 at the body's end."""
        while True:
            try:
                count = self.sock.recv_into(view, len(view), socket.MSG_WAITALL)
            except (BlockingIOError, InterruptedError):
                count = -1  # SO_RCVTIMEO: nothing for WAIT_STEP seconds
            if self._stopping:
                return 0
            if count >= 0:
                if count:
                    self.segment.last_data = time.monotonic()
                return count
            self._report_while_silent()

    def _report_while_silent(self) -> None:
        """(after a receive wait with no data) Report what is written meanwhile, or its bytes
        would reach the resume state only when more data comes or the stall ends the request;
        then end the request if the peer has been silent for the stall timeout."""
        self._settle(until_free=NO_BUFFER)
        self._report(force=True)
        if time.monotonic() - self.segment.last_data > self.stall_timeout:
            raise TimeoutError(f"no data for {self.stall_timeout:g} s")

    def _hand_off(self, buffer: int | None, view: memoryview, chained: bool) -> bool:
        """Send a received block to the writer, and to the hasher when it can extend the
        hashed prefix; returns whether it went to the hasher."""
        limit = self.limit()  # a faster connection may have taken over the tail meanwhile
        if self.position + len(view) > limit:
            view = view[: max(0, limit - self.position)]
        if not view:
            return chained
        start = self.position
        self.position += len(view)
        self.segment.received = self.position
        hashed = chained or self.partial.hashed == start
        self._in_flight.append(
            _Block(
                buffer,
                start,
                self.position,
                self.partial.submit_write(start, view),
                self.partial.submit_hash(start, view) if hashed else None,
            )
        )
        return hashed


async def receive(body: SocketBody) -> int:
    """Run `body` on a receiving thread; on cancellation stop it and wait for it, so no write
    is left running on a file that is about to be closed."""
    future = body.partial.start_receiving(body.run)
    try:
        await asyncio.wait([future])
    except asyncio.CancelledError:
        body.stop()
        await asyncio.wait([future])
        raise
    return future.result()
