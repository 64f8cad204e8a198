"""The prune screen (`p`): mark local models and abandoned partial downloads, see what marking
them frees, delete after a confirmation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from gguf_tui.store.scan import STATE_DOWNLOADING, STATE_PAUSED, StoreModel, StoreSnapshot
from gguf_tui.tui.render import DIM, clean, ellipsize, format_pair, partial_sizes, partials_summary, short_age
from gguf_tui.tui.rowtable import RowTable
from gguf_tui.tui.screens.confirm import ConfirmScreen
from gguf_tui.units import format_size

BUSY_STATES = (STATE_DOWNLOADING, STATE_PAUSED)


def partial_key(partial: Any) -> str:
    return f"partial:{partial.key}"


class PruneTable(RowTable):
    BINDINGS = [
        Binding("space", "screen.toggle_mark", "mark", show=True),
        Binding("a", "screen.toggle_all", "mark all", show=False),
        Binding("enter", "screen.delete", "delete marked", show=False),
    ]


class PruneScreen(ModalScreen[None]):
    """Full-screen list of models (sortable by size and last use) and partial downloads."""

    BINDINGS = [
        Binding("s", "sort('size')", "by size", show=True),
        Binding("u", "sort('used')", "by last use", show=True),
        Binding("d", "delete", "delete marked", show=True),
        Binding("escape", "close", "back", show=True),
    ]

    @dataclass
    class DeleteMarked(Message):
        models: list[StoreModel]
        partials: list[Any]

    def __init__(
        self,
        snapshot: StoreSnapshot,
        queued_keys: set[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(id="prune-screen")
        self.snapshot = snapshot
        self.queued_keys = set(queued_keys or ())
        self.clock = clock
        self.sort_by = "size"
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        with Vertical(id="prune-body"):
            yield Static(id="prune-summary", markup=False)
            yield PruneTable(id="prune-models", cursor_type="row", zebra_stripes=True)
            yield PruneTable(id="prune-partials", cursor_type="row")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        models = self.query_one("#prune-models", PruneTable)
        models.border_title = "Models"
        for key, label, width in (("mark", "", 3), ("name", "name", 30), ("size", "size", 9),
                                  ("used", "used", 6), ("state", "state", 12)):
            models.add_column(label, key=key, width=width)
        partials = self.query_one("#prune-partials", PruneTable)
        partials.border_title = "Partial downloads"
        for key, label, width in (("mark", "", 3), ("dest", "file", 30), ("done", "downloaded", 16),
                                  ("size", "reserved", 10), ("age", "saved", 6), ("owner", "owner", 14)):
            partials.add_column(label, key=key, width=width)
        self.refill()
        models.focus()

    # ---- content -----------------------------------------------------------------------------

    def set_snapshot(self, snapshot: StoreSnapshot, queued_keys: set[str] | None = None) -> None:
        self.snapshot = snapshot
        if queued_keys is not None:
            self.queued_keys = set(queued_keys)
        present = {f"model:{m.name}" for m in snapshot.models} | {partial_key(p) for p in snapshot.partials}
        self.marked &= present
        self.refill()

    def sorted_models(self) -> list[StoreModel]:
        models = list(self.snapshot.models)
        if self.sort_by == "size":
            return sorted(models, key=lambda m: (-m.disk_bytes, m.name))
        return sorted(models, key=lambda m: (m.lru_time, m.name))

    def _name_width(self, table: DataTable, fixed: int) -> int:
        return max(16, (table.size.width or self.app.size.width - 2) - fixed)

    def refill(self) -> None:
        now = self.clock()
        models = self.query_one("#prune-models", PruneTable)
        partials = self.query_one("#prune-partials", PruneTable)
        keep_model = models.cursor_row
        keep_partial = partials.cursor_row
        models.clear()
        name_width = self._name_width(models, 3 + 9 + 6 + 12 + 11)
        models.columns["name"].width = name_width  # type: ignore[index]
        for model in self.sorted_models():
            key = f"model:{model.name}"
            mark = "[x]" if key in self.marked else "[ ]"
            if model.state in BUSY_STATES:
                mark = " - "
            models.add_row(
                Text(mark),
                Text(ellipsize(clean(model.name), name_width), no_wrap=True),
                Text(format_size(model.disk_bytes), justify="right"),
                Text(short_age(model.last_used_at, now), justify="right"),
                Text(clean(model.state, 12), style=DIM),
                key=key,
            )
        partials.clear()
        dest_width = self._name_width(partials, 3 + 16 + 10 + 6 + 14 + 13)
        partials.columns["dest"].width = dest_width  # type: ignore[index]
        for partial in self.snapshot.partials:
            key = partial_key(partial)
            mark = "[x]" if key in self.marked else "[ ]"
            owner = "abandoned"
            if partial.owner is not None:
                mark, owner = " - ", f"pid {partial.owner.pid}"
            elif partial.key in self.queued_keys:
                mark, owner = " - ", "in the queue"
            downloaded, reserved = partial_sizes(partial)
            partials.add_row(
                Text(mark),
                Text(ellipsize(clean(partial.dest or partial.key), dest_width), no_wrap=True),
                Text(format_pair(downloaded, partial.total) if downloaded is not None else "?", justify="right"),
                Text(format_size(reserved), justify="right"),
                Text(short_age(partial.updated_at, now), justify="right"),
                Text(owner, style=DIM),
                key=key,
            )
        if not self.snapshot.partials:
            partials.add_row(Text(""), Text("none", style=DIM), Text(""), Text(""), Text(""), Text(""), key="none")
        if models.row_count:
            models.move_cursor(row=min(keep_model, models.row_count - 1))
        if partials.row_count:
            partials.move_cursor(row=min(keep_partial, partials.row_count - 1))
        models.border_subtitle = "sorted by size" if self.sort_by == "size" else "sorted by last use"
        self.update_summary()

    def marked_items(self) -> tuple[list[StoreModel], list[Any]]:
        models = [m for m in self.snapshot.models if f"model:{m.name}" in self.marked]
        partials = [p for p in self.snapshot.partials if partial_key(p) in self.marked]
        return models, partials

    def update_summary(self) -> None:
        models, partials = self.marked_items()
        freed = sum(m.disk_bytes for m in models) + sum(partial_sizes(p)[1] for p in partials)
        free = self.snapshot.free_space
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Prune", style="bold")
        text.append(f"  store {format_size(self.snapshot.total_size)} · free {format_size(free)}", style=DIM)
        text.append("\n")
        if models or partials:
            text.append(f"marked {len(models)} model{'s' if len(models) != 1 else ''}")
            if partials:  # downloaded and reserved of each are in the table; the dialog sums them
                text.append(f" + {len(partials)} partial{'s' if len(partials) != 1 else ''}")
            text.append(" · frees ")
            text.append(format_size(freed), style="bold")
            text.append(" · free after ")
            text.append(format_size(free + freed), style="bold")
        else:
            text.append("space marks a row · s / u sort by size / last use · d deletes what is marked", style=DIM)
        self.query_one("#prune-summary", Static).update(text)

    # ---- actions -----------------------------------------------------------------------------

    def _focused_table(self) -> PruneTable:
        focused = self.focused
        if isinstance(focused, PruneTable):
            return focused
        return self.query_one("#prune-models", PruneTable)

    def _row_key(self, table: DataTable) -> str | None:
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return key if key != "none" else None

    def _markable(self, key: str) -> bool:
        if key.startswith("model:"):
            model = next((m for m in self.snapshot.models if f"model:{m.name}" == key), None)
            if model is not None and model.state in BUSY_STATES:
                self.notify(
                    f"{clean(model.name)} belongs to an unfinished download: cancel it in the queue",
                    severity="warning",
                    markup=False,
                )
                return False
            return model is not None
        partial = next((p for p in self.snapshot.partials if partial_key(p) == key), None)
        if partial is not None and partial.owner is not None:
            self.notify("that partial belongs to a download in progress", severity="warning", markup=False)
            return False
        if partial is not None and partial.key in self.queued_keys:
            self.notify("that partial belongs to a download in the queue: cancel it there", severity="warning", markup=False)
            return False
        return partial is not None

    def action_toggle_mark(self) -> None:
        table = self._focused_table()
        key = self._row_key(table)
        if key is None:
            return
        if key in self.marked:
            self.marked.discard(key)
        elif self._markable(key):
            self.marked.add(key)
        row = table.cursor_row
        self.refill()
        table.move_cursor(row=min(row + 1, table.row_count - 1))

    def action_toggle_all(self) -> None:
        table = self._focused_table()
        keys = [row.key.value for row in table.ordered_rows if row.key.value != "none"]
        markable = [k for k in keys if k and self._quiet_markable(k)]
        if markable and all(k in self.marked for k in markable):
            self.marked -= set(markable)
        else:
            self.marked |= set(markable)
        self.refill()

    def _quiet_markable(self, key: str) -> bool:
        if key.startswith("model:"):
            return any(f"model:{m.name}" == key and m.state not in BUSY_STATES for m in self.snapshot.models)
        return any(
            partial_key(p) == key and p.owner is None and p.key not in self.queued_keys
            for p in self.snapshot.partials
        )

    def action_sort(self, by: str) -> None:
        self.sort_by = by
        self.refill()
        self.query_one("#prune-models", PruneTable).move_cursor(row=0)

    def action_delete(self) -> None:
        models, partials = self.marked_items()
        if not models and not partials:
            self.notify("nothing marked: space marks the highlighted row", markup=False)
            return
        freed = sum(m.disk_bytes for m in models) + sum(partial_sizes(p)[1] for p in partials)
        body = Text()
        for model in models[:8]:
            body.append(f"  {ellipsize(clean(model.name), 56)}  {format_size(model.disk_bytes)}\n")
        if len(models) > 8:
            body.append(f"  … and {len(models) - 8} more models\n")
        if partials:
            body.append(f"  {partials_summary(partials)}\n")
        body.append(f"\nThis frees {format_size(freed)}. Deleted files cannot be brought back.")

        def answer(yes: bool | None) -> None:
            if yes:
                self.marked.clear()
                self.post_message(self.DeleteMarked(models, partials))

        self.app.push_screen(ConfirmScreen("Delete for good?", body, yes_label="Delete"), answer)

    def action_close(self) -> None:
        self.dismiss(None)
