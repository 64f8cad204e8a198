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
        """After the table changed height (a pane grew beside it), show the highlighted row.

        Only scrolls, after the new size is laid out: moving the cursor here would race with
        a cursor move already on its way (and post a highlight of its own).
        """
        self.call_after_refresh(self._scroll_to_cursor_row)

    def _scroll_to_cursor_row(self) -> None:
        if not self.row_count:
            return
        header = self.header_height if self.show_header else 0
        visible = max(1, self.scrollable_content_region.height - header)
        row = self.cursor_row  # rows are one line high in every list of the dashboard
        top = round(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
