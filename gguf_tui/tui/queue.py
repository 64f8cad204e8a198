"""The Queue pane: one row per download, updated cell by cell as progress events arrive."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from gguf_tui.tui import keys
from gguf_tui.tui.rowtable import RowTable
from gguf_tui.tui.render import QUEUE_NUMBER_WIDTHS, StyleFor, no_style, queue_cells
from gguf_tui.tui.views import JobView

COLUMNS = ("name", "state", "percent", "bytes", "speed", "eta")
FIXED = QUEUE_NUMBER_WIDTHS  # each cell holds its own leading space


class QueueTable(RowTable):
    """Downloads in queue order. Progress updates touch only the cells that changed."""

    BINDINGS = keys.bindings(keys.QUEUE)
    HELP = "Every download. space pauses or resumes, c cancels, r retries, K/J reorder."

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", show_header=False, cell_padding=0, **kwargs)
        self.job_ids: list[int] = []
        self._cells: dict[int, dict[str, Text]] = {}
        self._views: dict[int, JobView] = {}
        self._fitted_width = 0
        self.style_for: StyleFor = no_style

    def on_mount(self) -> None:
        self._add_columns()

    def _widths(self) -> dict[str, int]:
        width = max(40, self.size.width or 80)
        state = 22 if width >= 100 else 13  # 'downloading elsewhere' fits when wide
        name = max(10, width - state - sum(FIXED.values()) - 2)
        return {"name": name, "state": state, **FIXED}

    def _add_columns(self) -> None:
        self._fitted_width = self.size.width
        for column, width in self._widths().items():
            self.add_column(column, width=width, key=column)

    def on_resize(self) -> None:
        if self.size.width != self._fitted_width:
            current = self.current_job_id  # clearing the columns puts the cursor back on row 0
            self.clear(columns=True)
            self._add_columns()
            self.set_jobs([self._views[job_id] for job_id in self.job_ids], cursor_job=current)
        self.keep_cursor_in_view()

    @property
    def current_job_id(self) -> int | None:
        if not self.job_ids:
            return None
        index = min(max(self.cursor_row, 0), len(self.job_ids) - 1)
        return self.job_ids[index]

    def _cells_for(self, view: JobView) -> dict[str, Text]:
        widths = self._widths()
        cells = queue_cells(
            view, self.style_for, name_width=widths["name"] - 1, state_width=widths["state"] - 1, widths=widths
        )
        cells["name"] = Text(" ") + cells["name"]
        cells["state"] = Text(" ") + cells["state"]
        return cells

    def set_jobs(self, views: list[JobView], *, cursor_job: int | None = None) -> None:
        """Rebuild every row (start, reorder, theme change); keeps the cursor on its job."""
        keep = cursor_job if cursor_job is not None else self.current_job_id
        self.job_ids = [view.id for view in views]
        self._views = {view.id: view for view in views}
        self._cells = {}
        with self.app.batch_update():
            self.clear()
            for view in views:
                cells = self._cells_for(view)
                self._cells[view.id] = cells
                self.add_row(*(cells[column] for column in COLUMNS), key=str(view.id))
        if keep in self.job_ids:
            self.move_cursor(row=self.job_ids.index(keep))

    def update_job(self, view: JobView) -> None:
        """Refresh one download's row; only changed cells are redrawn."""
        if view.id not in self._views:
            self.set_jobs([*self._views.values(), view], cursor_job=self.current_job_id)
            return
        self._views[view.id] = view
        cells = self._cells_for(view)
        old = self._cells.get(view.id, {})
        for column in COLUMNS:
            new = cells[column]
            previous = old.get(column)
            if previous is None or previous.plain != new.plain or previous.style != new.style:
                self.update_cell(str(view.id), column, new)
        self._cells[view.id] = cells

    def remove_job(self, job_id: int) -> None:
        if job_id in self._views:
            del self._views[job_id]
            self.set_jobs([self._views[i] for i in self.job_ids if i != job_id])

    def restyle(self, style_for: StyleFor) -> None:
        self.style_for = style_for
        self.set_jobs([self._views[job_id] for job_id in self.job_ids])
