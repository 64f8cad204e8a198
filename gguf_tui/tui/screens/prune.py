"""The prune screen (`p`): mark local models and abandoned partial downloads, see what marking
them frees, delete after a confirmation.

It also says what the duplicates across every store would free if linked (`gguf-tui dedupe`),
and `o` lists the other tools' models beside ours (each with its tool); deleting one goes
through that tool's own rules after a confirmation that names the tool."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from gguf_tui.store.allstores import TOOL_TITLES, AllStores
from gguf_tui.store.others import OtherModel
from gguf_tui.store.scan import STATE_DOWNLOADING, STATE_PAUSED, StoreModel, StoreSnapshot
from gguf_tui.tui.render import DIM, clean, ellipsize, format_pair, partial_sizes, partials_summary, short_age
from gguf_tui.tui.rowtable import RowTable
from gguf_tui.tui.screens.confirm import ConfirmScreen
from gguf_tui.tui.sources import other_key, others_summary, source_label
from gguf_tui.units import format_size

BUSY_STATES = (STATE_DOWNLOADING, STATE_PAUSED)


def partial_key(partial: Any) -> str:
    return f"partial:{partial.key}"


@dataclass
class PruneItemRow:
    """One row of the models list: ours or (with `o`) another tool's."""

    key: str
    name: str
    size: int
    used: float | None
    lru: float
    state: str
    tool: str
    busy: bool
    model: Any  # StoreModel or OtherModel


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
        Binding("o", "toggle_others", "other tools", show=True),
        Binding("d", "delete", "delete marked", show=True),
        Binding("escape", "close", "back", show=True),
    ]

    @dataclass
    class DeleteMarked(Message):
        models: list[StoreModel]
        partials: list[Any]
        others: list[OtherModel] = field(default_factory=list)  # other tools' models

    def __init__(
        self,
        snapshot: StoreSnapshot,
        queued_keys: set[str] | None = None,
        clock: Callable[[], float] = time.time,
        others: AllStores | None = None,
    ) -> None:
        super().__init__(id="prune-screen")
        self.snapshot = snapshot
        self.others = others
        self.include_others = False  # `o`: list the other tools' models too
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
        self._model_columns(models)
        partials = self.query_one("#prune-partials", PruneTable)
        partials.border_title = "Partial downloads"
        for key, label, width in (("mark", "", 3), ("dest", "file", 30), ("done", "downloaded", 16),
                                  ("size", "reserved", 10), ("age", "saved", 6), ("owner", "owner", 14)):
            partials.add_column(label, key=key, width=width)
        self.refill()
        models.focus()

    def _model_columns(self, models: DataTable) -> None:
        columns = [("mark", "", 3), ("name", "name", 30), ("size", "size", 9), ("used", "used", 6),
                   ("state", "state", 12)]
        if self.include_others:
            columns.insert(1, ("tool", "tool", 9))
        for key, label, width in columns:
            models.add_column(label, key=key, width=width)

    # ---- content -----------------------------------------------------------------------------

    def set_others(self, others: AllStores | None) -> None:
        """A new scan of the other tools' stores: marks of models that went are dropped."""
        self.others = others
        self.refresh_bindings()
        present = {f"other:{other_key(m)}" for m in self._other_models()}
        self.marked = {k for k in self.marked if not k.startswith("other:") or k in present}
        self.refill()

    def _other_models(self) -> list[OtherModel]:
        if self.others is None or not self.include_others:
            return []
        return [m for m in self.others.others.models if m.files]

    def set_snapshot(self, snapshot: StoreSnapshot, queued_keys: set[str] | None = None) -> None:
        self.snapshot = snapshot
        if queued_keys is not None:
            self.queued_keys = set(queued_keys)
        present = {f"model:{m.name}" for m in snapshot.models} | {partial_key(p) for p in snapshot.partials}
        self.marked = {k for k in self.marked if k in present or k.startswith("other:")}
        self.refill()

    def sorted_models(self) -> list[StoreModel]:
        return [item.model for item in self.sorted_items() if item.key.startswith("model:")]

    def sorted_items(self) -> list[PruneItemRow]:
        """Our models and (with `o`) the other tools', sorted by size or by last use."""
        items = [
            PruneItemRow(f"model:{m.name}", m.name, m.disk_bytes, m.last_used_at, m.lru_time,
                         m.state, "ours", m.state in BUSY_STATES, m)
            for m in self.snapshot.models
        ]
        for model in self._other_models():
            # Other tools record no last use we can trust: the newest file change stands in.
            changed = max(entry.mtime_ns for entry in model.files) / 1e9
            state = "broken" if model.problem else "ok"
            items.append(PruneItemRow(f"other:{other_key(model)}", model.name, model.size, changed,
                                      changed, state, source_label(model.tool), False, model))
        if self.sort_by == "size":
            return sorted(items, key=lambda i: (-i.size, i.name))
        return sorted(items, key=lambda i: (i.lru, i.name))

    def _name_width(self, table: DataTable, fixed: int) -> int:
        return max(16, (table.size.width or self.app.size.width - 2) - fixed)

    def refill(self) -> None:
        now = self.clock()
        models = self.query_one("#prune-models", PruneTable)
        partials = self.query_one("#prune-partials", PruneTable)
        keep_model = models.cursor_row
        keep_partial = partials.cursor_row
        models.clear()
        fixed = 3 + 9 + 6 + 12 + 11 + (10 if self.include_others else 0)
        name_width = self._name_width(models, fixed)
        models.columns["name"].width = name_width  # type: ignore[index]
        for item in self.sorted_items():
            mark = "[x]" if item.key in self.marked else "[ ]"
            if item.busy:
                mark = " - "
            cells = [
                Text(mark),
                Text(ellipsize(clean(item.name), name_width), no_wrap=True),
                Text(format_size(item.size), justify="right"),
                Text(short_age(item.used, now), justify="right"),
                Text(clean(item.state, 12), style=DIM),
            ]
            if self.include_others:
                cells.insert(1, Text(item.tool, style=DIM))
            models.add_row(*cells, key=item.key)
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

    def marked_others(self) -> list[OtherModel]:
        return [m for m in self._other_models() if f"other:{other_key(m)}" in self.marked]

    def update_summary(self) -> None:
        models, partials = self.marked_items()
        others = self.marked_others()
        freed = (sum(m.disk_bytes for m in models) + sum(partial_sizes(p)[1] for p in partials)
                 + sum(m.size for m in others))
        free = self.snapshot.free_space
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Prune", style="bold")
        text.append(f"  store {format_size(self.snapshot.total_size)} · free {format_size(free)}", style=DIM)
        text.append("\n")
        if self.others is not None and (self.others.others.models or self.others.duplicates):
            text.append_text(self._others_line())
            text.append("\n")
        if models or partials or others:
            count = len(models) + len(others)
            text.append(f"marked {count} model{'s' if count != 1 else ''}")
            if partials:  # downloaded and reserved of each are in the table; the dialog sums them
                text.append(f" + {len(partials)} partial{'s' if len(partials) != 1 else ''}")
            text.append(" · frees " if not others else " · frees up to ")
            text.append(format_size(freed), style="bold")
            text.append(" · free after ")
            text.append(format_size(free + freed), style="bold")
        else:
            text.append("space marks a row · s / u sort by size / last use · d deletes what is marked", style=DIM)
        self.query_one("#prune-summary", Static).update(text)

    def _others_line(self) -> Text:
        """What the other tools hold and what linking the duplicates would free (one line)."""
        assert self.others is not None
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"other tools {format_size(self.others.other_stores_bytes)} · ", style=DIM)
        if self.others.reclaimable_bytes:
            line.append(format_size(self.others.reclaimable_bytes), style="bold")
            line.append(" in duplicates: gguf-tui dedupe links them", style=DIM)
        else:
            line.append("no duplicates known", style=DIM)
        unchecked = len(self.others.unchecked)
        if unchecked:  # same size, no SHA-256 known: only hashing them tells
            line.append(f" · {unchecked} same-size file{'s' if unchecked != 1 else ''} not compared",
                        style=DIM)
        width = (self.size.width or self.app.size.width) - 3  # padding, and a cell to spare
        if len(line) > width:
            line.truncate(width - 1)
            line.append("…", style=DIM)
        return line

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
        if key.startswith("other:"):
            return any(f"other:{other_key(m)}" == key for m in self._other_models())
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
        if key.startswith("other:"):
            return self._markable(key)
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`o` is offered once other tools' models are found (the footer stays as it was)."""
        if action == "toggle_others":
            return self.others is not None and bool(self.others.others.models)
        return True

    def action_toggle_others(self) -> None:
        """o: list the other tools' models beside ours (like `prune --all`), or stop."""
        if self.others is None or not self.others.others.models:
            self.notify("no other tool's models found (other_stores in the config)", markup=False)
            return
        self.include_others = not self.include_others
        if not self.include_others:
            self.marked = {k for k in self.marked if not k.startswith("other:")}
        models = self.query_one("#prune-models", PruneTable)
        models.clear(columns=True)
        self._model_columns(models)
        self.refill()

    def action_delete(self) -> None:
        models, partials = self.marked_items()
        others = self.marked_others()
        if not models and not partials and not others:
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
        if others:
            body.append_text(others_summary(others))
            body.append("\n")
            freed += sum(m.size for m in others)
        up_to = "up to " if others else ""  # a blob another model of that tool uses stays
        body.append(f"\nThis frees {up_to}{format_size(freed)}. Deleted files cannot be brought back.")

        def answer(yes: bool | None) -> None:
            if yes:
                self.marked.clear()
                self.post_message(self.DeleteMarked(models, partials, others))

        title = "Delete for good?"
        if others:  # the question names every other tool's store it deletes from
            stores = " and ".join(dict.fromkeys(TOOL_TITLES.get(m.tool, m.tool) for m in others))
            title = f"Delete for good, also from {stores}?"
        self.app.push_screen(ConfirmScreen(title, body, yes_label="Delete"), answer)

    def action_close(self) -> None:
        self.dismiss(None)
