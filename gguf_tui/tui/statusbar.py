"""The status bar: store size, free space, what the queue still needs, active downloads."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from gguf_tui.tui.render import DIM
from gguf_tui.units import format_size


@dataclass(frozen=True)
class StoreStatus:
    store_size: int | None = None
    free_space: int | None = None
    queue_needs: int = 0
    margin: int = 0
    active: int = 0
    queued: int = 0
    paused: int = 0

    @property
    def fits(self) -> bool:
        if self.free_space is None:
            return True
        return self.queue_needs + (self.margin if self.queue_needs else 0) <= self.free_space


def status_text(status: StoreStatus, short_style: Style) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    sep = (" · ", DIM)
    text.append("store ", DIM)
    text.append(format_size(status.store_size) if status.store_size is not None else "…")
    text.append(*sep)
    text.append("free ", DIM)
    text.append(format_size(status.free_space) if status.free_space is not None else "?")
    text.append(*sep)
    text.append("queue needs ", DIM)
    if status.fits:
        text.append(format_size(status.queue_needs))
    else:
        text.append(f"{format_size(status.queue_needs)} (won't fit)", short_style)
    text.append(*sep)
    text.append(f"{status.active} active")
    return text


class StatusBar(Static):
    """One line at the bottom; the app sets `status` whenever a number changes."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.status = StoreStatus()
        self.short_style = Style(color="red", bold=True)

    def set_status(self, status: StoreStatus) -> None:
        self.status = status
        self.update(status_text(status, self.short_style))
        self.set_class(not status.fits, "-short")
