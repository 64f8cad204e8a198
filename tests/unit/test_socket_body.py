"""Bodies read straight from the socket on a thread (issue 16): what they write, hash and report,
and how they end (body end, shrunk segment, dropped or silent peer, stop)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading

import pytest

from gguf_tui.engine.partial import PartialFile
from gguf_tui.engine.segments import Segment, SegmentPlan
from gguf_tui.engine.socketbody import BLOCK, SocketBody

MiB = 1024 * 1024


@pytest.fixture
def tcp_pair():
    """A connected pair of real TCP sockets on loopback: (the receiver's, the sender's)."""
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    listener.close()
    yield receiver, sender
    for sock in (receiver, sender):
        sock.close()


@pytest.fixture
def partial(tmp_path):
    partial = PartialFile(tmp_path / "x.partial", "x.gguf")
    partial.open()
    yield partial
    asyncio.run(partial.close())


def _body(receiver, partial, segment, body_end, *, buffered=b"", stall=30.0, stop_at=None):
    reported: list[tuple[int, int]] = []
    body = SocketBody(
        receiver, buffered, partial, segment, body_end, stop_at, stall,
        (bytearray(BLOCK), bytearray(BLOCK)),
        on_written=lambda start, end: reported.append((start, end)),
        hand_back=lambda: False,
    )
    return body, reported


def _send(sender: socket.socket, data: bytes, close: bool = True) -> threading.Thread:
    def run() -> None:
        sender.sendall(data)
        if close:
            sender.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _contiguous(reported: list[tuple[int, int]], start: int) -> int:
    """The reported blocks follow each other from `start`; returns where they end."""
    for block_start, block_end in reported:
        assert block_start == start and block_end > block_start, reported
        start = block_end
    return start


def test_body_is_written_hashed_and_reported_in_order(tcp_pair, partial, tmp_path):
    receiver, sender = tcp_pair
    data = os.urandom(3 * MiB + MiB // 2 + 10)
    head, rest = data[:1000], data[1000:]  # what aiohttp had buffered, then the socket
    thread = _send(sender, rest)
    body, reported = _body(receiver, partial, Segment(0, len(data)), len(data), buffered=head)
    assert body.run() == len(data)
    thread.join()
    assert _contiguous(reported, 0) == len(data)
    assert (tmp_path / "x.partial").read_bytes() == data
    assert partial.hashed == len(data)
    assert partial.hexdigest() == hashlib.sha256(data).hexdigest()


def test_never_reads_past_the_body_or_a_shrunk_segment(tcp_pair, partial, tmp_path):
    """A faster connection took the tail over (segment.end shrank): the rest stays unread."""
    receiver, sender = tcp_pair
    data = os.urandom(3 * MiB)
    thread = _send(sender, data, close=False)
    segment = Segment(0, len(data))
    segment.end = MiB + 123
    body, reported = _body(receiver, partial, segment, len(data))
    assert body.run() == MiB + 123
    thread.join()
    assert _contiguous(reported, 0) == MiB + 123
    assert (tmp_path / "x.partial").read_bytes() == data[: MiB + 123]


def test_a_dropped_connection_keeps_what_it_delivered(tcp_pair, partial, tmp_path):
    receiver, sender = tcp_pair
    data = os.urandom(MiB + MiB // 2)
    thread = _send(sender, data)  # then closes, short of the 4 MiB body
    body, reported = _body(receiver, partial, Segment(0, 4 * MiB), 4 * MiB)
    with pytest.raises(ConnectionResetError):
        body.run()
    thread.join()
    assert body.written_upto == len(data)
    assert _contiguous(reported, 0) == len(data)
    assert (tmp_path / "x.partial").read_bytes() == data


def test_a_silent_peer_is_a_stall(tcp_pair, partial):
    receiver, sender = tcp_pair
    thread = _send(sender, b"x" * 1000, close=False)  # then nothing, connection open
    body, reported = _body(receiver, partial, Segment(0, 4 * MiB), 4 * MiB, stall=0.2)
    with pytest.raises(TimeoutError):
        body.run()
    thread.join()
    assert reported == [(0, 1000)]


def test_stop_ends_a_blocked_receive(tcp_pair, partial):
    receiver, _sender = tcp_pair
    body, reported = _body(receiver, partial, Segment(5, 4 * MiB), 4 * MiB)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(body.run()))
    thread.start()
    body.stop()
    thread.join()
    assert result == [5] and reported == []


def test_stealing_never_splits_below_a_block_in_flight():
    victim = Segment(0, 64 * MiB)
    victim.received = MiB
    victim.last_data = 0.0  # silent for long: a victim
    plan = SegmentPlan([victim], steal_min=MiB, silent_after=1.0)
    plan.can_split = True
    victim.reading_to = 40 * MiB  # beyond the middle (32.5 MiB)
    stolen = plan.next_segment()
    assert stolen is not None and stolen.start == 40 * MiB == victim.end
    victim.reading_to = 64 * MiB  # all of it in flight: nothing to take
    plan.active = [victim]
    victim.end = 64 * MiB
    assert plan.next_segment() is None


def test_a_rate_limit_hands_the_rest_back_to_the_loop(tcp_pair, partial, tmp_path):
    """A rate limit set mid-body: the thread stops after its block, and says so."""
    receiver, sender = tcp_pair
    data = os.urandom(3 * MiB)
    thread = _send(sender, data, close=False)
    body, reported = _body(receiver, partial, Segment(0, len(data)), len(data))
    body.hand_back = lambda: bool(reported) or body.position > 0
    assert body.run() == BLOCK
    thread.join()
    assert body.handed_back and reported == [(0, BLOCK)]
    assert (tmp_path / "x.partial").read_bytes() == data[:BLOCK]


def test_a_silent_peer_has_its_written_blocks_reported_while_waiting(tcp_pair, partial):
    """The peer sends one block and goes quiet, connection open: that block reaches the loop
    (the resume state, the progress) within a receive wait, not only when the stall timeout
    or a stop ends the request, so a kill meanwhile does not throw it away."""
    receiver, sender = tcp_pair
    thread = _send(sender, os.urandom(BLOCK), close=False)
    body, reported = _body(receiver, partial, Segment(0, 4 * MiB), 4 * MiB, stall=30.0)
    heard = threading.Event()
    body.on_written = lambda start, end: (reported.append((start, end)), heard.set())
    runner = threading.Thread(target=body.run)
    runner.start()
    try:
        # One receive wait is 1 s here; 10 s only bounds a failure (before the fix: 30 s).
        assert heard.wait(10), "the written block was not reported while the peer was silent"
        assert reported == [(0, BLOCK)]
    finally:
        body.stop()
        runner.join()
        thread.join()
