"""The body of an HTTPS answer read from its socket and decrypted on a thread, into the partial.

Through aiohttp, TLS is decrypted inside asyncio's SSL protocol on the event loop, and every
chunk then costs the same Python work as a plain-HTTP one, all on one thread (measured: about
3.6 CPU-s/GB against 1.8 for plain HTTP). Here, once the headers are in, the loop's reading of
the connection is stopped at both levels (the SSL transport and the raw socket transport under
it), and a `SocketBody` thread goes on with the connection's own `ssl.SSLObject`: it first takes
what asyncio had already received and not yet decrypted (its incoming `MemoryBIO`, read through
the SSL object, so in order), then receives raw bytes from a duplicate of the socket into that
BIO and decrypts them straight into the 1 MiB blocks.

This uses asyncio's private SSL protocol (Python 3.11-3.13's sslproto): every attribute and
state it relies on is checked first, and where anything differs, the answer stays with
aiohttp before any byte is taken. The connection is aborted afterwards: neither aiohttp's
parser nor asyncio's SSL state saw the body's end, so it cannot be reused.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import time
from asyncio import selector_events, sslproto
from dataclasses import dataclass

import aiohttp

from gguf_tui.engine.errors import RetryableError
from gguf_tui.engine.socketbody import SocketBody, open_transport_of_sized_body

# The versions whose sslproto was read for this: the uvloop-derived one, the same in 3.11 and
# 3.12 (3.13 changes only how an abort reaches the socket). Tested on 3.11.
KNOWN_PYTHONS = ((3, 11), (3, 12), (3, 13))
RAW_BLOCK = 256 * 1024  # encrypted bytes per receive: a few TLS records, decrypted at once
NEVER = 1 << 62  # a read-buffer high-water mark the SSL protocol never reaches

taken_count = 0  # answers whose body was taken off the loop (read by tests and benches)


@dataclass
class TakenTLS:
    """A TLS connection taken off the event loop for its body."""

    sock: socket.socket  # blocking duplicate of the raw socket; the loop no longer reads it
    buffered: bytes  # body bytes aiohttp had already decrypted and buffered
    sslobj: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    ssl_transport: asyncio.Transport

    def abort(self) -> None:
        """(loop) Drop the connection without a TLS shutdown: the loop no longer reads it, so
        a close would wait for the peer's close_notify until asyncio's shutdown timeout."""
        self.ssl_transport.abort()


def _ssl_protocol_of(transport: asyncio.BaseTransport) -> sslproto.SSLProtocol | None:
    """The asyncio SSL protocol under an SSL transport, if it is the one this module knows."""
    if sys.version_info[:2] not in KNOWN_PYTHONS:
        return None
    if type(transport) is not sslproto._SSLProtocolTransport:
        return None
    protocol = getattr(transport, "_ssl_protocol", None)
    if type(protocol) is not sslproto.SSLProtocol:
        return None
    expected = {
        "_sslobj": ssl.SSLObject,
        "_incoming": ssl.MemoryBIO,
        "_outgoing": ssl.MemoryBIO,
        "_transport": asyncio.BaseTransport,
        "_write_backlog": object,
        "_state": sslproto.SSLProtocolState,
        "_app_reading_paused": bool,
        "_ssl_reading_paused": bool,
        "_app_protocol_is_buffer": bool,
    }
    for name, kind in expected.items():
        if not isinstance(getattr(protocol, name, None), kind):
            return None
    return protocol


def take_tls_socket(response: aiohttp.ClientResponse) -> TakenTLS | None:
    """(loop) Stop the loop's reading of an HTTPS answer and hand its connection to a thread;
    None, with nothing taken, where the body must stay with aiohttp."""
    global taken_count
    transport = open_transport_of_sized_body(response)
    if transport is None:
        return None
    protocol = _ssl_protocol_of(transport)
    if protocol is None:
        return None
    raw_transport = protocol._transport
    raw = raw_transport.get_extra_info("socket")
    if (
        # A selector transport reads only when the loop sees the socket readable, so pausing
        # it leaves no read in flight (a proactor's overlapped read would still deliver).
        not isinstance(raw_transport, selector_events._SelectorSocketTransport)
        or protocol._state is not sslproto.SSLProtocolState.WRAPPED  # no EOF, no shutdown begun
        or protocol._app_protocol_is_buffer  # aiohttp copies; the buffered kind reads ahead
        or protocol._write_backlog
        or protocol._outgoing.pending
        or raw_transport.is_closing()
        or raw_transport.get_write_buffer_size()
        or raw is None
        or raw.type != socket.SOCK_STREAM
    ):
        return None
    # Take what is buffered, then stop the app-side reading (taking may resume it; asyncio then
    # only schedules its read, which finds the reading paused), then take what a re-entrant
    # refill may have added. The rest is either inside the SSL object and its incoming BIO,
    # which the thread reads first, or still in the socket.
    buffered = response.content.read_nowait()
    response.connection.protocol.pause_reading()  # also drops aiohttp's per-read timeout timer
    buffered += response.content.read_nowait()
    # With this high-water mark the protocol never pauses the raw reading, so it never resumes
    # it either, whatever the thread leaves in the incoming BIO. (Setting it resumes a raw
    # reading the protocol had paused; the pause below follows before the loop runs again.)
    transport.set_read_buffer_limits(high=NEVER, low=NEVER)
    raw_transport.pause_reading()
    if (
        not protocol._app_reading_paused
        or protocol._ssl_reading_paused
        or raw_transport.is_reading()
    ):
        # Cannot happen with the checked classes; if it did, the loop could read on, so the
        # connection is dropped and the bytes taken are not counted: the range is asked again.
        transport.abort()
        raise RetryableError("the TLS connection could not be taken off the event loop")
    sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
    sock.setblocking(True)
    taken_count += 1
    return TakenTLS(sock, buffered, protocol._sslobj, protocol._incoming, protocol._outgoing,
                    transport)


class TLSBody(SocketBody):
    """A SocketBody whose blocks are decrypted with the connection's own SSL object."""

    def __init__(self, tls: TakenTLS, *args, **kwargs) -> None:
        super().__init__(tls.sock, tls.buffered, *args, **kwargs)
        self.tls = tls
        self._raw = bytearray(RAW_BLOCK)

    def _receive(self, view: memoryview) -> int:
        """Decrypted bytes into `view`: all of it, or less when the sender pauses for
        WAIT_STEP or the connection ends; 0 at the end."""
        filled = 0
        raw = memoryview(self._raw)
        while filled < len(view) and not self._stopping:
            try:
                count = self.tls.sslobj.read(len(view) - filled, view[filled:])
            except ssl.SSLWantReadError:
                count = -1
            except ssl.SSLWantWriteError:
                raise ConnectionResetError("the TLS peer began a renegotiation mid-body") from None
            self._send_pending()
            if count == 0:
                break  # close_notify
            if count > 0:
                filled += count
                self.segment.last_data = time.monotonic()
                continue
            try:
                received = self.sock.recv_into(raw, RAW_BLOCK)
            except (BlockingIOError, InterruptedError):
                received = -1  # SO_RCVTIMEO: nothing for WAIT_STEP seconds
            if self._stopping or received == 0:
                break
            if received > 0:
                self.tls.incoming.write(raw[:received])
            elif filled:
                break  # hand over what is here while the sender pauses
            else:
                self._report_while_silent()
        return 0 if self._stopping else filled

    def _send_pending(self) -> None:
        """Send what reading made the SSL object queue for the peer (a TLS 1.3 KeyUpdate
        answer): the loop writes nothing on this connection any more."""
        if self.tls.outgoing.pending:
            self.sock.sendall(self.tls.outgoing.read())
