"""Headless progress for `pull` and `verify --repair`: a bar on a TTY, periodic lines otherwise,
or one JSON event per line."""

from __future__ import annotations

import json
import sys
import time

from gguf_tui.engine.api import (
    EngineEvent,
    JobError,
    JobState,
    Notice,
    Progress,
    Retrying,
    StateChanged,
)
from gguf_tui.textsafe import plain
from gguf_tui.units import format_eta, format_rate, format_size

PLAIN_PROGRESS_EVERY = 5.0
# Reported by the final summary, or not worth a line of their own.
_QUIET_STATES = frozenset({
    JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED,
    JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING, JobState.VERIFYING,
})  # fmt: skip


class ProgressPrinter:
    """Human progress on stderr (a bar on a TTY, a line every few seconds otherwise) or JSON."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0
        self.bar_shown = False

    def event(self, event: EngineEvent) -> None:
        if self.json_mode:
            print(json.dumps(event.to_json()), flush=True)
            return
        if isinstance(event, Progress):
            self._progress(event)
            return
        text = None
        if isinstance(event, StateChanged):
            if event.state in _QUIET_STATES:
                return
            name = plain(event.name)
            text = f"{name}: {event.state.value}"
            if event.state == JobState.ELSEWHERE and event.message:
                text = f"{name}: {plain(event.message)}"  # names the owner's word and pid
            elif event.message and not event.message.startswith(event.state.value):
                text += f": {plain(event.message)}"
            elif event.message:
                text = f"{name}: {plain(event.message)}"
        elif isinstance(event, Retrying) and not event.max_attempts:
            text = f"{plain(event.name)}: {plain(event.reason)}"  # unbounded: "waiting for network (…)"
        elif isinstance(event, Retrying):
            text = (
                f"{plain(event.name)}: retrying {event.attempt}/{event.max_attempts} in "
                f"{event.delay:.1f} s: {plain(event.reason)}"
            )
        elif isinstance(event, Notice):
            text = f"{plain(event.name)}: {plain(event.message)}"
        elif isinstance(event, JobError):
            return  # the final summary names the error
        if text:
            self.line(text)

    def line(self, text: str) -> None:
        """One line on stderr, below the bar."""
        self._clear_bar()
        print(text, file=sys.stderr, flush=True)

    def _progress(self, event: Progress) -> None:
        done = format_size(event.bytes_done)
        total = format_size(event.total) if event.total else "?"
        percent = f"{_floor_tenths(event.bytes_done, event.total):5.1f}%" if event.total else "   ?%"
        verb = "re-checking" if event.phase == "re-checking" else "downloading"
        if self.tty:
            width = 24
            filled = int(width * event.bytes_done / event.total) if event.total else 0
            bar = "█" * filled + "·" * (width - filled)
            line = (
                f"\r{plain(event.name)[:32]} {bar} {percent} {done}/{total} "
                f"{format_rate(event.speed)} ETA {format_eta(event.eta)} {verb if verb != 'downloading' else ''}"
            )
            sys.stderr.write(line[:160] + "\x1b[K")
            sys.stderr.flush()
            self.bar_shown = True
            return
        now = time.monotonic()
        if now - self.last_line >= PLAIN_PROGRESS_EVERY:
            self.last_line = now
            print(
                f"{plain(event.name)}: {verb} {percent.strip()} {done} of {total}, "
                f"{format_rate(event.speed)}, ETA {format_eta(event.eta)}",
                file=sys.stderr,
                flush=True,
            )

    def _clear_bar(self) -> None:
        if self.bar_shown:
            sys.stderr.write("\r\x1b[K")
            self.bar_shown = False

    def finish(self) -> None:
        self._clear_bar()


async def pump(stream, printer: ProgressPrinter) -> None:
    """Print every event of an in-process queue's stream (`verify --repair`)."""
    async for event in stream:
        printer.event(event)


def drain(stream, printer: ProgressPrinter) -> None:
    """Print the events still waiting in an in-process queue's stream."""
    while not stream.queue.empty():
        printer.event(stream.queue.get_nowait())


def _floor_tenths(done: int, total: int) -> float:
    """Percent to one decimal, rounded down: '100.0%' only once every byte is there."""
    if done >= total:
        return 100.0
    return min(999, (1000 * done) // total) / 10

