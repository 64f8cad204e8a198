"""Receiving one answer's body into the partial file: straight from the socket on a thread
where the answer allows it, else chunk by chunk through aiohttp on the event loop.

`BodyReceiver` is a part of `FileDownload` (fetch.py): it writes into the download's partial,
records finished ranges in its resume state and learns the size of an open-ended body.
"""

from __future__ import annotations

import asyncio
import time
import functools

import aiohttp

from gguf_tui.config import DownloadsConfig
from gguf_tui.engine.errors import RetryableError
from gguf_tui.engine.http import transfer_error
from gguf_tui.engine.partial import PartialFile
from gguf_tui.engine.ratelimit import RateLimiter
from gguf_tui.engine.resume import ResumeState
from gguf_tui.engine.segments import Segment
from gguf_tui.engine.socketbody import BLOCK as SOCKET_BLOCK
from gguf_tui.engine.socketbody import SocketBody, take_socket
from gguf_tui.engine.socketbody import receive as receive_on_thread
from gguf_tui.engine.tlsbody import TLSBody, take_tls_socket

# 1 MiB batches: still in the CPU cache when copied into the page cache and hashed (measured
# faster than 4 MiB), and memory stays flat whatever the connection count.
WRITE_BATCH = 1024 * 1024
FLUSH_EVERY = 0.25  # seconds: slow links still show progress and save state
MAX_EMPTY_READS = 10_000  # empty reads in a row (HTTP chunk markers) before a body is given up


class BodyReceiver:
    """The body-reading half of FileDownload."""

    partial: PartialFile
    settings: DownloadsConfig
    limiter: RateLimiter
    state: ResumeState
    _buffer_pairs: list[tuple[bytearray, bytearray]]

    def _mark_done(self, start: int, end: int) -> None:
        raise NotImplementedError

    def maybe_save_state(self) -> None:
        raise NotImplementedError

    def _set_total(self, total: int) -> None:
        raise NotImplementedError

    async def _stream_body(
        self, response: aiohttp.ClientResponse, segment: Segment, stop_at: int | None
    ) -> None:
        """Receive the body into the partial: on a thread straight from the socket where the
        answer allows (a length, no rate limit; TLS decrypted there too), else through aiohttp."""
        taken = None if self.limiter.rate else take_socket(response)
        tls = None if self.limiter.rate or taken else take_tls_socket(response)
        if tls is not None:
            taken = tls.sock, tls.buffered
        if taken is None:
            await self._stream_through_loop(response, segment, stop_at)
            return
        sock, buffered = taken
        buffers = self._buffer_pairs.pop() if self._buffer_pairs else (
            bytearray(SOCKET_BLOCK), bytearray(SOCKET_BLOCK)
        )
        loop = asyncio.get_running_loop()
        received_from = segment.received
        body: SocketBody | None = None
        try:
            body = (
                functools.partial(TLSBody, tls) if tls
                else functools.partial(SocketBody, sock, buffered)
            )(
                self.partial,
                segment,
                body_end=segment.received + (response.content_length or 0),
                stop_at=stop_at,
                stall_timeout=self.settings.stall_timeout,
                buffers=buffers,
                on_written=lambda start, end: loop.call_soon_threadsafe(self._written, start, end),
                hand_back=lambda: bool(self.limiter.rate),
            )
            await receive_on_thread(body)
        except (OSError, TimeoutError) as exc:
            raise transfer_error(exc, self.settings.stall_timeout) from None
        finally:
            if body is None:
                sock.close()
            else:
                segment.received = max(body.written_upto, segment.start)
            if tls is not None:
                tls.abort()
            response.close()  # aiohttp never saw the body's end: the connection cannot be reused
            self._buffer_pairs.append(buffers)
        if not body.handed_back:
            self._check_body_end(response, segment, stop_at, received_from)

    def _written(self, start: int, end: int) -> None:
        """A block received on a socket thread is on disk (in the page cache): record it."""
        self._mark_done(start, end)
        self.maybe_save_state()

    async def _stream_through_loop(
        self, response: aiohttp.ClientResponse, segment: Segment, stop_at: int | None
    ) -> None:
        pending: asyncio.Future | None = None
        pending_range = (0, 0)
        batch: list[bytes] = []
        batch_start = batch_start_at_open = segment.received
        batch_len = 0
        last_flush = time.monotonic()

        async def flush() -> None:
            """Wait for the previous batch's write and hash, then start this batch's."""
            nonlocal pending, pending_range, batch, batch_start, batch_len
            if pending is not None:
                await pending
                self._mark_done(*pending_range)
                pending = None
            if batch:
                steps = [self.partial.write(batch_start, batch)]
                if self.partial.hashed == batch_start:
                    steps.append(self.partial.hash_received(batch_start, batch))
                pending = asyncio.ensure_future(asyncio.gather(*steps))
                pending_range = (batch_start, batch_start + batch_len)
                batch_start += batch_len
                batch, batch_len = [], 0

        try:
            try:
                # One received chunk at a time: iter_any() would join whatever is buffered
                # into a new bytes object, one more copy of the body on the event loop.
                content = response.content
                empty_reads = 0
                while True:
                    data, _end_of_http_chunk = await content.readchunk()
                    if not data:
                        # The end, or an HTTP chunk marker. aiohttp's shared empty reader
                        # answers (b"", True) forever without suspending, so the end is
                        # told by at_eof(), and every empty read yields to the event loop.
                        empty_reads += 1
                        if content.at_eof() or empty_reads > MAX_EMPTY_READS:
                            break
                        await asyncio.sleep(0)
                        continue
                    empty_reads = 0
                    # Re-read each time: a faster connection may take over the segment's tail.
                    limit = segment.end if stop_at is None else min(stop_at, segment.end or stop_at)
                    if limit is not None:
                        room = limit - segment.received
                        if len(data) >= room:
                            data = data[:room]
                    now = time.monotonic()
                    if data:
                        batch.append(data)
                        batch_len += len(data)
                        segment.received += len(data)
                        segment.last_data = now
                        if self.limiter.rate:
                            segment.throttled = True
                            try:
                                await self.limiter.acquire(len(data))
                            finally:
                                segment.throttled = False
                            now = segment.last_data = time.monotonic()
                    if batch_len >= WRITE_BATCH or (batch and now - last_flush >= FLUSH_EVERY):
                        last_flush = now
                        await flush()
                        self.maybe_save_state()
                    if limit is not None and segment.received >= limit:
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                await flush()
                raise transfer_error(exc, self.settings.stall_timeout) from None
            await flush()  # the last batch
            await flush()  # ... and wait for it
        finally:
            unwritten_from = batch_start
            if pending is not None:
                # Never leave a write running on a file that is about to be closed.
                await asyncio.wait([pending])
                if not pending.cancelled() and pending.exception() is None:
                    self._mark_done(*pending_range)
                else:
                    unwritten_from = pending_range[0]
            segment.received = max(unwritten_from, segment.start)
        self._check_body_end(response, segment, stop_at, batch_start_at_open)

    def _check_body_end(
        self,
        response: aiohttp.ClientResponse,
        segment: Segment,
        stop_at: int | None,
        received_from: int,
    ) -> None:
        """After a body ended: learn the size of an open-ended one, or fail a short one."""
        limit = segment.end if stop_at is None else min(stop_at, segment.end or stop_at)
        if limit is None:
            self._set_total_at_eof(segment.received)
            segment.end = segment.received
        elif segment.received < limit:
            # Not a network failure: the server ended its answer early (a dropped connection
            # raises instead), so it counts against `retries`, not the outage time.
            if segment.received == received_from:
                raise RetryableError(
                    f"the server's answer held no bytes (status {response.status}, "
                    f"Content-Length {response.headers.get('Content-Length', 'absent')[:20]})"
                )
            raise RetryableError("the connection closed before the range was complete")

    def _set_total_at_eof(self, size: int) -> None:
        if self.state.total_size is None:
            self._set_total(size)
