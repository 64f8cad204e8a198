"""What the panes show: the catalog rows, the detail of the highlighted thing, the status bar,
and the state colours of the current theme."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError
from textual.events import DescendantFocus
from textual.widgets import DataTable

from gguf_tui.tui.catalog import CatalogRow, CatalogTable, build_rows, job_name_for, quant_status
from gguf_tui.tui.detail import HELP_TEXT, DetailPane, heading_detail, mmproj_detail, quant_detail, repo_detail
from gguf_tui.tui.fitstate import context_text, fit_lines
from gguf_tui.tui.lifecycle import while_running
from gguf_tui.tui.queue import QueueTable
from gguf_tui.store.sharing import shared_files
from gguf_tui.tui.render import DIM, Doc, clean, job_detail, local_detail
from gguf_tui.tui.sources import add_copies, other_detail, others_heading_detail
from gguf_tui.tui.statusbar import StatusBar, StoreStatus
from gguf_tui.tui.theming import STATE_VARIABLE_DEFAULTS
from gguf_tui.tui.views import queue_counts

if TYPE_CHECKING:
    from gguf_tui.tui.app import GgufApp


class PanesMixin:
    """Pane contents of `GgufApp`, recomputed from the app's state.

    Handlers here are found by name (`on_...`): Textual collects `@on` decorators only from
    classes that are message pumps, which a mixin is not.
    """

    def refresh_catalog(self: GgufApp) -> None:
        job_states = {view.name: view.state for view in self.jobs.values()}
        rows = build_rows(self.snapshot, self.search, job_states, self.clock(), self.fit, self.sources)
        catalog = self.query_one(CatalogTable)
        catalog.show_rows(rows)
        title = Text("Catalog")
        if self.sources.found:
            title.append(f" · {self.sources.describe()}")
        if self.search is not None:
            title.append(f" · hub: \"{clean(self.search.query, 40)}\"")
            if self.search.opened:
                title.append(f" · fit @{context_text(self.fit.context)}" + (" · fits only" if self.fit.only_fitting else ""))
        catalog.border_title = title  # type: ignore[assignment]
        if self.detail_source == "catalog":
            self.show_catalog_detail()

    def show_detail(self: GgufApp, text: Doc | Text) -> None:
        self.query_one(DetailPane).show(text)

    def current_job_id(self: GgufApp) -> int | None:
        return self.query_one(QueueTable).current_job_id

    def current_row(self: GgufApp) -> CatalogRow | None:
        return self.query_one(CatalogTable).current

    def show_job_detail(self: GgufApp) -> None:
        job_id = self.current_job_id()
        if job_id is None or job_id not in self.jobs:
            self.show_detail(Text("No downloads. Highlight a quantisation in the catalog and press d.", style=DIM))
            return
        view = self.jobs[job_id]
        self._detail_painted_at = time.monotonic()
        self.show_detail(job_detail(view, self.clock(), self.style_for))

    def refresh_job_files(self: GgufApp) -> None:
        """Ask the engine for the highlighted job's resume state (it changes as bytes arrive)."""
        job_id = self.current_job_id()
        if job_id in self.jobs and self.engine is not None and self._engine_ready:
            self.read_job_files(job_id)

    def show_catalog_detail(self: GgufApp) -> None:
        row = self.current_row()
        if row is None:
            self.show_detail(Text(HELP_TEXT, style=DIM))
            return
        self.show_detail(self.catalog_detail(row))
        if row.kind in ("quant", "mmproj"):
            key = row.key
            if key not in self.facts:
                self.set_timer(0.25, lambda: self._fetch_facts_if_current(key))

    def catalog_detail(self: GgufApp, row: CatalogRow) -> Doc | Text:
        now = self.clock()
        if row.kind == "local" and row.model is not None:
            shared = shared_files(self.snapshot, row.model) if self.snapshot is not None else {}
            paths = [str(f.path) for f in row.model.files]
            return add_copies(local_detail(row.model, now, shared), self.sources.stores, paths)
        if row.kind == "other" and row.other is not None:
            return other_detail(row.other, self.sources.stores)
        if row.key in ("h:others", "note:others"):
            return others_heading_detail(self.sources)
        if row.kind == "repo" and row.repo is not None:
            opened = self.search.opened.get(row.repo) if self.search else None
            files = opened.files if opened else None
            error = opened.error if opened else None
            return repo_detail(row.result, row.repo, files, error, now)
        job_states = {view.name: view.state for view in self.jobs.values()}
        if row.kind == "quant" and row.files is not None and row.group is not None:
            from gguf_tui.hub import pick_mmproj

            mmproj = pick_mmproj(row.files.mmprojs, self.config.hub.prefer_mmproj)
            local_paths = self._local_paths()
            status = quant_status(row.files, row.group.files, local_paths, job_states, job_name_for(row.files, row.group))
            fit = fit_lines(self.fit, (row.files.repo, row.group.name))
            return quant_detail(row.files, row.group, mmproj, self.facts.get(row.key), status, fit)
        if row.kind == "mmproj" and row.files is not None and row.hub_file is not None:
            name = f"{row.files.repo}/{row.hub_file.display}"
            status = quant_status(row.files, (row.hub_file,), self._local_paths(), job_states, name)
            return mmproj_detail(row.files, row.hub_file, self.facts.get(row.key), status)
        if row.key == "h:local":
            return heading_detail(self.snapshot)
        if row.kind == "heading":
            return Text.assemble(row.label, "\n\n", Text("enter on a repo lists its quantisations", style=DIM))
        return row.label.copy()

    def _local_paths(self: GgufApp) -> set[str]:
        if self.snapshot is None:
            return set()
        return {f.relative for m in self.snapshot.models if m.managed for f in m.files if f.exists}

    @while_running  # a timer: it may fire while the app closes and its panes are gone
    def _fetch_facts_if_current(self: GgufApp, key: str) -> None:
        row = self.current_row()
        if row is None or row.key != key or key in self.facts or row.files is None:
            return
        hub_file = row.hub_file if row.kind == "mmproj" else (row.group.files[0] if row.group else None)
        if hub_file is None:
            return
        self.facts[key] = None  # reading
        self.read_facts(key, row.files.repo, hub_file.path, row.files.commit or row.files.revision)

    @while_running
    def on_data_table_row_highlighted(self: GgufApp, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if isinstance(table, CatalogTable) and (table.has_focus or self.detail_source == "catalog"):
            self.detail_source = "catalog"
            self.show_catalog_detail()
        elif isinstance(table, QueueTable) and (table.has_focus or self.detail_source == "queue"):
            self.detail_source = "queue"
            self.show_job_detail()
            self.refresh_job_files()

    @while_running
    def on_data_table_row_selected(self: GgufApp, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CatalogTable):
            self.action_open()

    @while_running
    def on_descendant_focus(self: GgufApp, event: DescendantFocus) -> None:
        widget = event.widget
        self.screen.set_class(isinstance(widget, DetailPane), "-detail-focused")
        if isinstance(widget, CatalogTable):
            self.detail_source = "catalog"
            self.show_catalog_detail()
        elif isinstance(widget, QueueTable):
            self.detail_source = "queue"
            self.show_job_detail()
            self.refresh_job_files()

    # ---- status and colours ------------------------------------------------------------------

    def status(self: GgufApp) -> StoreStatus:
        views = list(self.jobs.values())
        return StoreStatus(
            store_size=self.snapshot.total_size if self.snapshot is not None else None,
            free_space=self.snapshot.free_space if self.snapshot is not None else None,
            queue_needs=sum(v.remaining for v in views),
            margin=self.config.downloads.free_space_margin,
            counts=queue_counts(views),
            engine=self.engine_kind,
            engine_state=self.engine_state,
            other_stores=self.sources.stores.other_stores_bytes if self.sources.found else None,  # type: ignore[union-attr]
        )

    def update_status(self: GgufApp) -> None:
        self.query_one(StatusBar).set_status(self.status())

    def style_for(self: GgufApp, variable: str) -> Style:
        style = self._styles.get(variable)
        if style is None:
            value = self.theme_variables.get(variable) or STATE_VARIABLE_DEFAULTS.get(variable, "")
            try:
                style = Style(color=Color.parse(value).rich_color)
            except ColorParseError:
                style = Style()
            self._styles[variable] = style
        return style

    def _restyle(self: GgufApp) -> None:
        self._styles.clear()
        self.query_one(StatusBar).short_style = self.style_for("space-short") + Style(bold=True)
        self.query_one(QueueTable).restyle(self.style_for)
        self.update_status()
