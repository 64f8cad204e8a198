"""Which byte ranges the connections of one file fetch next.

Ranges are handed out in file order, one piece (a bounded request) at a time, so the hashed
prefix keeps up with the download and requests never overlap. When nothing is left to hand out,
an idle connection takes over the second half of a range whose connection is slow or silent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Segment:
    """A byte range one connection is filling; `end` may shrink when another connection steals."""

    start: int
    end: int | None  # exclusive; None = until the end of the body (size unknown)
    received: int = 0  # absolute offset up to which bytes were received
    requested_end: int = 0  # end of the range asked for by the request in flight
    last_data: float = 0.0  # monotonic time of the last bytes received
    reading_to: int = 0  # a receiving thread's block in flight ends here: never stolen
    throttled: bool = False  # waiting for the rate limiter (not a stall)
    started: float = 0.0

    def __post_init__(self) -> None:
        self.received = self.requested_end = self.start
        self.last_data = self.started = time.monotonic()

    @property
    def unreceived(self) -> int:
        return 0 if self.end is None else max(0, self.end - self.received)

    def rate(self, now: float) -> float:
        return (self.received - self.start) / max(1e-3, now - self.started)


class SegmentPlan:
    """The ranges of one file still to fetch: in flight (`active`) and not yet handed out."""

    def __init__(self, holes: list[Segment], *, steal_min: int, silent_after: float) -> None:
        self.active: list[Segment] = holes[:1]
        self.unassigned: list[Segment] = holes[1:]
        self.steal_min = steal_min
        self.silent_after = silent_after
        self.can_split = False  # set once the server has shown it serves byte ranges

    def give_back(self, segment: Segment, piece_end: int) -> None:
        """Return the part of `segment` past this request's piece to the shared work list."""
        if segment.end is None or segment.end <= piece_end:
            return
        self.unassigned.append(Segment(piece_end, segment.end))
        self.unassigned.sort(key=lambda s: s.start)
        segment.end = piece_end

    def single_stream(self) -> None:
        """The server sends the whole file in one response: nothing to share out."""
        self.unassigned = []
        self.can_split = False

    def finished(self, segment: Segment) -> None:
        self.active.remove(segment)

    def next_segment(self) -> Segment | None:
        """The lowest unassigned range, else the tail of a slow or silent connection's range."""
        if self.unassigned:
            segment = self.unassigned.pop(0)
            segment.last_data = segment.started = time.monotonic()
            self.active.append(segment)
            return segment
        if not self.can_split:
            return None
        now = time.monotonic()
        rates = sorted(s.rate(now) for s in self.active if now - s.started > 0.5)
        typical = rates[len(rates) // 2] if rates else 0.0

        def lagging(segment: Segment) -> bool:
            silent = now - segment.last_data > self.silent_after
            slow = typical > 0 and now - segment.started > 1.0 and segment.rate(now) < typical / 4
            return silent or slow

        victims = [s for s in self.active if s.unreceived >= 2 * self.steal_min and lagging(s)]
        if not victims:
            return None
        victim = max(victims, key=lambda s: s.unreceived)
        middle = max(victim.received + victim.unreceived // 2, victim.reading_to)
        if victim.end is None or middle >= victim.end:
            return None
        stolen = Segment(middle, victim.end)
        victim.end = middle  # the victim stops at the middle and closes its connection
        self.active.append(stolen)
        return stolen

    async def wait_for_work(self, poll: float = 0.2) -> Segment | None:
        """Next range for an idle connection; stays while others fetch, as one may fall behind."""
        segment = self.next_segment()
        while segment is None and self.can_split and self.active:
            await asyncio.sleep(poll)
            segment = self.next_segment()
        return segment
