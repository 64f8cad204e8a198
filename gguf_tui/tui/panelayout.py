"""Where the three panes sit: one order in the DOM (catalog, queue, detail) for every size.

Tab follows that order, and so does the screen: on a small terminal the panes are stacked in
it (the detail under the others, DESIGN.md section 6); on a wide one the queue runs along the
bottom at full width and the detail stands right of the catalog. The wide layout docks the
queue and the detail, and docked widgets do not share space, so this container gives them
their heights in whole rows: the queue a third, the detail the rest beside the catalog.
"""

from __future__ import annotations

from textual.containers import Container

QUEUE_MIN_ROWS = 7  # five downloads plus the border


class PaneArea(Container):
    """The catalog, queue and detail panes; sizes the docked panes of the wide layout."""

    def on_resize(self) -> None:
        self.fit_panes()

    def fit_panes(self) -> None:
        queue, detail = self.query_one("#queue"), self.query_one("#detail")
        if not self.screen.has_class("-wide"):
            # the stacked layout's heights come from the stylesheet
            queue.styles.clear_rule("height")
            detail.styles.clear_rule("height")
            return
        rows = self.size.height
        queue_rows = min(rows, max(QUEUE_MIN_ROWS, rows // 3))
        queue.styles.height = queue_rows
        detail.styles.height = max(0, rows - queue_rows)
