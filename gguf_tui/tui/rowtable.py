"""A DataTable whose cursor is a whole row: the base of every list in the dashboard."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class RowTable(DataTable):
    """Home and End go to the first and last row.

    DataTable binds them to horizontal scrolling, which does nothing in a table that always fits
    its width; in a list of rows a user expects them to jump to the top and the bottom.
    """

    BINDINGS = [
        Binding("home", "scroll_top", "first row", show=False),
        Binding("end", "scroll_bottom", "last row", show=False),
    ]

    def keep_cursor_in_view(self) -> None:
        """After the table changed height (a pane grew beside it), show the highlighted row."""
        if self.row_count:
            self.move_cursor(row=self.cursor_row, scroll=True)
