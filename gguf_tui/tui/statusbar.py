"""The status bar: store size (ours, then the other tools'), free space, what the queue still
needs, active downloads."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from gguf_tui.tui.render import DIM
from gguf_tui.units import format_size


@dataclass(frozen=True)
class StoreStatus:
    store_size: int | None = None
    free_space: int | None = None
    queue_needs: int = 0
    margin: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # views.queue_counts: shared with the queue
    engine: str = ""  # "service" (the per-user engine service) or "local" (in this process)
    engine_state: str = "attached"  # "starting", "attached", "gone"
    other_stores: int | None = None  # bytes the other tools' stores hold, once any is found

    @property
    def active(self) -> int:
        return self.counts.get("active", 0)

    @property
    def fits(self) -> bool:
        if self.free_space is None:
            return True
        return self.queue_needs + (self.margin if self.queue_needs else 0) <= self.free_space


def status_text(status: StoreStatus, short_style: Style, compact: bool = False) -> Text:
    """The bar's line; `compact` (when the full line does not fit) uses short labels and
    leaves out an attached engine's kind, so the numbers stay on an 80-column terminal."""
    text = Text(no_wrap=True, overflow="ellipsis")
    sep = (" · ", DIM)
    text.append("store ", DIM)
    text.append(format_size(status.store_size) if status.store_size is not None else "…")
    text.append(*sep)
    if status.other_stores is not None:  # the store figure stays ours; this one is theirs
        text.append("others " if compact else "other tools ", DIM)
        text.append(format_size(status.other_stores))
        text.append(*sep)
    text.append("free ", DIM)
    text.append(format_size(status.free_space) if status.free_space is not None else "?")
    text.append(*sep)
    text.append("needs " if compact else "queue needs ", DIM)
    if status.fits:
        text.append(format_size(status.queue_needs))
    else:
        text.append(f"{format_size(status.queue_needs)} (won't fit)", short_style)
    text.append(*sep)
    text.append(f"{status.active} active")
    elsewhere = status.counts.get("elsewhere", 0)
    if elsewhere:
        text.append(f" · {elsewhere} elsewhere", DIM)
    if status.engine and not (compact and status.engine_state == "attached"):
        text.append(*sep)
        text.append("engine ", DIM)
        if status.engine_state == "gone":
            text.append(f"{status.engine} stopped", short_style)
        elif status.engine_state == "starting":
            text.append(f"{status.engine}…")
        else:
            text.append(status.engine)
    return text


class StatusBar(Widget):
    """One line at the bottom; the app sets the status whenever a number changes.

    A plain widget with `render()`: a change repaints this line only, no layout pass, which
    matters when progress changes "queue needs" several times a second.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status = StoreStatus()
        self.short_style = Style(color="red", bold=True)
        self._text = status_text(self.status, self.short_style)

    def render(self) -> Text:
        return self._text

    def set_status(self, status: StoreStatus) -> None:
        text = status_text(status, self.short_style)
        if self.size.width and len(text.plain) > self.size.width - 1:  # one cell of padding
            text = status_text(status, self.short_style, compact=True)
        self.status = status
        if text.plain != self._text.plain or text.spans != self._text.spans:
            self._text = text
            self.refresh()
        self.set_class(not status.fits, "-short")

    def on_resize(self) -> None:
        self._text = Text()  # forces a new line at the new width
        self.set_status(self.status)
