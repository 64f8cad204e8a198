"""The Catalog pane: Hub search results (a repo opens into its quantisations) and local models.

`build_rows` turns the app's state into `CatalogRow`s (no widgets involved); `CatalogTable`
shows them in a DataTable that only renders visible lines, keeps the cursor on the same row
across refreshes, and re-fits its columns to its width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rich.style import Style
from rich.text import Text

from gguf_tui.engine.api import JobState
from gguf_tui.hub.models import HubFile, QuantGroup, RepoFiles, SearchResult
from gguf_tui.tui import keys
from gguf_tui.tui.fitstate import FitState
from gguf_tui.tui.gcpolicy import settle_collector
from gguf_tui.tui.rowtable import RowTable
from gguf_tui.tui.render import BOLD, DIM, clean, count, ellipsize, short_age
from gguf_tui.store.others import OtherModel
from gguf_tui.store.scan import StoreModel, StoreSnapshot
from gguf_tui.tui.sources import SOURCE_WIDTH, SourceFilter, info_parts, other_key, source_label
from gguf_tui.units import format_size


@dataclass
class RepoState:
    """One opened repo: its files once loaded, or the error that stopped the listing."""

    repo: str
    files: RepoFiles | None = None
    error: str | None = None

    @property
    def loading(self) -> bool:
        return self.files is None and self.error is None


@dataclass
class SearchState:
    query: str
    results: list[SearchResult] | None = None  # None while the search runs
    error: str | None = None
    opened: dict[str, RepoState] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogRow:
    key: str
    kind: str  # heading, note, local, repo, quant, mmproj
    label: Text
    size: str = ""
    info: Text = field(default_factory=Text)
    fit: str = ""  # the fit column: a symbol plus a word ('✓ GPU'), quant rows only
    repo: str | None = None
    result: SearchResult | None = None
    group: QuantGroup | None = None
    hub_file: HubFile | None = None
    files: RepoFiles | None = None
    model: StoreModel | None = None
    source: str = ""  # the source column (ours, hf, ...): set once other tools' models exist
    other: OtherModel | None = None  # another tool's model (kind "other")

    @cached_property
    def signature(self) -> tuple:
        """What the row's line shows: equal signatures draw equal lines (computed once)."""
        return (self.key, self.label.plain, self.size, self.info.plain, self.fit, self.source,
                tuple(self.label.spans), tuple(self.info.spans))


def _info(*parts: tuple[str, Style | None]) -> Text:
    text = Text(no_wrap=True)
    for value, style in parts:
        if value:
            if text:
                text.append(" ")
            text.append(value, style=style or Style())
    return text


def quant_status(files: RepoFiles, hub_files: tuple[HubFile, ...], local_paths: set[str],
                 job_states: dict[str, JobState], name: str) -> str:
    """'in store', a queue state word, or ''."""
    if name in job_states and not job_states[name].is_final:
        return job_states[name].value
    if hub_files and all(f"{files.repo}/{f.local_name}" in local_paths for f in hub_files):
        return "in store"
    return ""


def job_name_for(files: RepoFiles, group: QuantGroup) -> str:
    """The queue name a `d` on this group gets (the Hub resolver's naming)."""
    if group.quant and len(files.find_quant(group.quant)) == 1:
        return f"{files.repo}:{group.quant}"
    return f"{files.repo}/{group.files[0].display}"


def _repo_rows(state: RepoState, local_paths: set[str], job_states: dict[str, JobState],
               fit: FitState | None) -> list[CatalogRow]:
    repo = state.repo
    if state.loading:
        return [CatalogRow(f"note:{repo}", "note", Text("    loading files…", style=DIM), repo=repo)]
    if state.error is not None:
        return [CatalogRow(f"note:{repo}", "note", Text(f"    ! {clean(state.error, 200)}"), repo=repo)]
    files = state.files
    assert files is not None
    rows: list[CatalogRow] = []
    has_mmproj = bool(files.mmprojs)
    groups = [(g, "quant") for g in files.quants] + [(g, "other") for g in files.other]
    if not groups and not files.mmprojs:
        rows.append(CatalogRow(f"note:{repo}", "note", Text("    no GGUF files in this repo", style=DIM), repo=repo))
    hidden = 0
    for index, (group, _kind) in enumerate(groups):
        fit_key = (repo, group.name)
        if fit is not None and fit.only_fitting and not fit.fits(fit_key):
            hidden += 1
            continue
        parts = "1 file" if group.part_count == 1 else f"{group.part_count} parts"
        if not group.complete:
            parts = f"incomplete {len(group.files)}/{group.part_count}"
        status = quant_status(files, group.files, local_paths, job_states, job_name_for(files, group))
        label = clean(group.quant) if group.quant else clean(group.name, 80)
        rows.append(
            CatalogRow(
                f"quant:{repo}:{index}",
                "quant",
                Text(f"    {label}", no_wrap=True),
                format_size(group.total_size),
                _info((parts, None), ("+ mmproj" if has_mmproj else "", DIM), (status, BOLD)),
                fit=fit.label(fit_key) if fit is not None else "",
                repo=repo,
                group=group,
                files=files,
            )
        )
    if hidden:
        rows.append(
            CatalogRow(
                f"note:{repo}:fit", "note",
                Text(f"    {hidden} quant(s) that do not fit hidden (fit filter)", style=DIM), repo=repo,
            )
        )  # fmt: skip
    for index, hub_file in enumerate(files.mmprojs):
        status = quant_status(files, (hub_file,), local_paths, job_states, f"{files.repo}/{hub_file.display}")
        rows.append(
            CatalogRow(
                f"mmproj:{repo}:{index}",
                "mmproj",
                Text(f"    {clean(hub_file.name, 80)}", style=DIM, no_wrap=True),
                format_size(hub_file.size),
                _info(("projector", DIM), (status, BOLD)),
                repo=repo,
                hub_file=hub_file,
                files=files,
            )
        )
    if files.skipped:
        rows.append(
            CatalogRow(
                f"note:{repo}:skipped",
                "note",
                Text(f"    {len(files.skipped)} unsafe path(s) left out", style=DIM),
                repo=repo,
            )
        )
    return rows


def local_key(model: StoreModel) -> str:
    return ("local:" if model.managed else "unmanaged:") + model.name


def build_rows(
    snapshot: StoreSnapshot | None,
    search: SearchState | None,
    job_states: dict[str, JobState],
    now: float,
    fit: FitState | None = None,
    sources: SourceFilter | None = None,
) -> list[CatalogRow]:
    """Every catalog row: the Hub section (after a search) first, then the local models
    (ours, then the other tools' under the source filter)."""
    rows: list[CatalogRow] = []
    local_paths = {f.relative for m in (snapshot.models if snapshot else ()) if m.managed for f in m.files if f.exists}
    if search is not None:
        query = clean(search.query, 60)
        if search.error is not None:
            rows.append(CatalogRow("h:hub", "heading", Text(f"Hub: \"{query}\"", style=BOLD)))
            rows.append(CatalogRow("note:hub", "note", Text(f"  ! {clean(search.error, 200)}")))
        elif search.results is None:
            rows.append(CatalogRow("h:hub", "heading", Text(f"Hub: \"{query}\" · searching…", style=BOLD)))
        else:
            found = len(search.results)
            rows.append(
                CatalogRow("h:hub", "heading", Text(f"Hub: \"{query}\" · {found} repo{'s' if found != 1 else ''}", style=BOLD))
            )
            if not found:
                rows.append(CatalogRow("note:hub", "note", Text("  no GGUF repos found", style=DIM)))
        for result in search.results or []:
            opened = search.opened.get(result.id)
            marker = "▾" if opened else "▸"
            rows.append(
                CatalogRow(
                    f"repo:{result.id}",
                    "repo",
                    Text(f"{marker} {clean(result.id, 120)}", no_wrap=True),
                    "",
                    _info((f"↓{count(result.downloads)}", None), (f"♥{count(result.likes)}", DIM),
                          ("gated" if result.gated else "", BOLD)),
                    repo=result.id,
                    result=result,
                )
            )
            if opened:
                rows.extend(_repo_rows(opened, local_paths, job_states, fit))
    if sources is None or sources.shows_ours:
        rows.extend(_our_rows(snapshot, now, sources))
    if sources is not None:
        rows.extend(_other_rows(sources))
    return rows


def _our_rows(snapshot: StoreSnapshot | None, now: float, sources: SourceFilter | None) -> list[CatalogRow]:
    rows: list[CatalogRow] = []
    models = snapshot.models if snapshot else ()
    if snapshot is None:
        rows.append(CatalogRow("h:local", "heading", Text("Local models · scanning…", style=BOLD)))
    else:
        rows.append(
            CatalogRow(
                "h:local",
                "heading",
                Text(f"Local models · {len(models)} · {format_size(snapshot.total_size)}", style=BOLD),
            )
        )
        if not models:
            rows.append(CatalogRow("note:local", "note", Text("  none yet: press / to search the Hub", style=DIM)))
    column = sources is not None and sources.found
    dups = sources.stores.duplicate_paths if column and sources.stores else set()
    for model in models:
        state = model.state if model.state not in ("verified", "unverified") else ""
        info = _info(
            (clean(model.quant, 20) if model.quant else "", None),
            (clean(state, 20), BOLD if state in ("corrupt", "modified", "incomplete") else DIM),
            (f"used {short_age(model.last_used_at, now)}" if model.last_used_at else "", DIM),
            ("dup" if dups and any(str(f.path) in dups for f in model.files) else "", DIM),
        )
        rows.append(
            CatalogRow(
                local_key(model),
                "local",
                Text(f"  {clean(model.name, 200)}", no_wrap=True),
                format_size(model.size),
                info,
                model=model,
                source="ours" if column else "",
            )
        )
    return rows


def _other_rows(sources: SourceFilter) -> list[CatalogRow]:
    """The other tools' models under the filter: one heading, then a row per model."""
    if sources.stores is None or not sources.found:
        return []
    cache_key = rows_key(sources.stores, sources.current)
    if sources.row_cache is not None and sources.row_cache[0] == cache_key:
        return sources.row_cache[1]  # the same scan under the same filter: the same rows
    rows = _build_other_rows(sources)
    sources.row_cache = (cache_key, rows)
    return rows


def rows_key(stores: Any, current: str) -> tuple:
    """What the other tools' rows depend on: that scan of their stores (an object the rows
    keep alive, so its id is not reused meanwhile), the duplicates and the filter."""
    return (id(stores.others), frozenset(stores.duplicate_paths), current)


def other_rows_for(stores: Any, current: str, shown: Any = None, key_hint: str = "s") -> tuple[tuple, list[CatalogRow]]:
    """(cache key, rows) for the other tools' models of `stores` under filter `current`:
    plain data, so the scan's worker thread builds them and the event loop only shows them.
    The rows on screen (`shown`, with their key) come back as they are when nothing changed."""
    sources = SourceFilter(current=current, stores=stores, row_cache=shown, key_hint=key_hint)
    rows = _other_rows(sources)
    for row in rows:
        row.signature  # noqa: B018 - computed here, in the worker, not on the event loop
    return sources.row_cache or (rows_key(stores, current), rows)


def _build_other_rows(sources: SourceFilter) -> list[CatalogRow]:
    assert sources.stores is not None
    others = sources.shown_models()
    if sources.current == "gguf-tui":  # ours only: one line says what else is on the box
        total = format_size(sources.stores.other_stores_bytes)
        count_all = len(sources.stores.others.models)
        models = f"{count_all} model{'s' if count_all != 1 else ''}"
        note = f"  + other tools: {models} · {total} ({sources.key_hint} shows them)"
        return [CatalogRow("note:others", "note", Text(note, style=DIM))]
    title = "Other tools" if sources.current == "all" else source_label(sources.current)
    size = format_size(sum(m.size for m in others))
    rows = [CatalogRow("h:others", "heading", Text(f"{title} · {len(others)} · {size}", style=BOLD))]
    dups = sources.stores.duplicate_paths
    seen: set[str] = set()
    for model in others:
        key = other_key(model)
        while key in seen:  # two broken entries may share a name: keys stay unique
            key += "+"
        seen.add(key)
        duplicate = any(str(f.data_path) in dups for f in model.files)
        rows.append(
            CatalogRow(
                key,
                "other",
                Text(f"  {clean(_without_gguf(model.name), 200)}", no_wrap=True),
                format_size(model.size),
                _info(*info_parts(model, duplicate)),
                source=source_label(model.tool),
                other=model,
            )
        )
    return rows


def _without_gguf(name: str) -> str:
    """A tool's name for a file without '.gguf' (every line would end so): room for the quant."""
    return name[:-5] if name.lower().endswith(".gguf") else name


def middle_cut(text: str, width: int) -> str:
    """`text` cut in the middle to `width`: an owner's start and a file name's end both stay."""
    if len(text) <= width or width < 8:
        return ellipsize(text, width)
    head = (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def compose_line(row: CatalogRow, width: int, info_width: int, fit_width: int = 0,
                 source_width: int = 0) -> Text:
    """One catalog line: the label, the source column, then size right-aligned, the fit
    column, the info column.

    Info starts at the same column on every line so sizes line up; a line without a size
    lets a long name (a repo id) run into the size column, and a line without info (a heading)
    runs into the info column too.
    """
    info = row.info.copy()
    if len(info) > info_width:
        info = Text(ellipsize(info.plain, info_width), no_wrap=True)
    size_width = 9
    info_room = info_width + 1 if len(info) or row.size else 0
    fit_room = fit_width + 1 if fit_width and row.size else 0  # sized rows keep one column
    source_room = source_width + 1 if source_width and row.size else 0
    label_width = width - info_room - fit_room - source_room - (size_width + 1 if row.size else 0)
    label = row.label.copy()
    if len(label) > label_width and row.kind == "other":  # keep the file name's end: its quant
        label = Text(middle_cut(label.plain, label_width), style=label.style, no_wrap=True)
    elif len(label) > label_width:
        label = Text(ellipsize(label.plain, label_width), style=label.style, no_wrap=True)
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append_text(label)
    line.append(" " * (label_width - len(label) + 1))
    if source_room:
        line.append(row.source[:source_width].ljust(source_width) + " ", style=DIM)
    if row.size:
        line.append(row.size.rjust(size_width) + " ")
    if fit_room:
        line.append(row.fit[:fit_width].ljust(fit_width) + " ")
    line.append_text(info)
    return line


FILL_SLICE = 150  # rows added per turn of the event loop when the table is rebuilt
OTHER_INFO_WIDTH = 16  # 'Q4_K_M broken dup'
FIT_WIDTH = 12  # the longest fit label: '? 20/32, KV?'


class CatalogTable(RowTable):
    """The catalog's table: one composed line per row, re-fitted to its width."""

    BINDINGS = keys.bindings(keys.CATALOG)  # its `enter` replaces DataTable's select
    HELP = "Hub search results and local models. / searches, enter opens a repo, d downloads."

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", show_header=False, cell_padding=0, **kwargs)
        self.catalog_rows: list[CatalogRow] = []
        self._by_key: dict[str, CatalogRow] = {}
        self._fitted_width = 0
        self._layout: tuple[int, ...] = ()  # widths the shown lines were composed for
        self._generation = 0  # bumped by each full rebuild: slices of an older one stop

    def on_mount(self) -> None:
        self._add_columns()

    def _line_width(self) -> int:
        return max(30, (self.size.width or 80) - 2)  # room for the scrollbar

    def _add_columns(self) -> None:
        self._fitted_width = self.size.width
        self.add_column("row", width=self._line_width(), key="row")

    def on_resize(self) -> None:
        if self.size.width != self._fitted_width:
            current = self.current  # clearing the columns puts the cursor back on row 0
            self.clear(columns=True)
            self._layout = ()  # every line is composed again for the new width
            self._add_columns()
            self.show_rows(self.catalog_rows)
            if current is not None:
                self.select_key(current.key)
        self.keep_cursor_in_view()

    @property
    def current(self) -> CatalogRow | None:
        if not self.catalog_rows or self.row_count == 0:
            return None
        index = min(self.cursor_row, len(self.catalog_rows) - 1)
        return self.catalog_rows[index] if index >= 0 else None

    def show_rows(self, rows: list[CatalogRow]) -> None:
        """Replace the rows, keeping the cursor on the same key (or the same place).

        Lines that did not change are left alone: with thousands of other tools' models
        listed, rebuilding the table on every queue change would stall the event loop."""
        previous = self.current
        previous_index = self.cursor_row
        width = self._line_width()
        fit_width = min(max((len(row.fit) for row in rows), default=0), FIT_WIDTH)
        source_width = SOURCE_WIDTH if any(row.source for row in rows) else 0
        info_width = min(max((len(row.info) for row in rows), default=0),
                         width // 2 - fit_width - source_width)
        if source_width:  # names matter more than the info column once sources share the line
            info_width = min(info_width, OTHER_INFO_WIDTH)
        layout = (width, fit_width, source_width, info_width)
        old_rows = self.catalog_rows
        # Rows of the same scan are the same objects: `is` settles most of them at no cost.
        same_keys = (layout == self._layout and len(rows) == len(old_rows) == self.row_count
                     and all(new is old or new.key == old.key for new, old in zip(rows, old_rows)))
        changed = [i for i, (new, old) in enumerate(zip(rows, old_rows))
                   if new is not old and new.signature != old.signature] if same_keys else []
        self.catalog_rows = list(rows)
        self._by_key = {row.key: row for row in rows}
        self._layout = layout
        if same_keys:
            for index in changed:  # the cursor and scroll stay where they are
                row = rows[index]
                line = compose_line(row, width - 1, info_width, fit_width, source_width)
                self.update_cell(row.key, "row", Text(" ") + line)
            return
        target = 0
        if previous is not None and previous.key in self._by_key:
            target = next(i for i, row in enumerate(rows) if row.key == previous.key)
        elif rows:
            target = min(max(previous_index, 0), len(rows) - 1)
        self._generation += 1
        with self.app.batch_update():
            self.clear()
            # Thousands of lines go in over several turns of the event loop (a slice per turn,
            # the cursor's first), so no single turn holds the loop for long.
            first = max(FILL_SLICE, target + FILL_SLICE // 2)
            self._fill(self._generation, first)
        if rows:
            self.move_cursor(row=target, scroll=True)

    def _fill(self, generation: int, count: int, schedule: bool = True) -> None:
        """Add the next `count` rows (composed for the current layout); with `schedule`, the
        slice after them on the next turn of the loop."""
        if generation != self._generation:
            return  # a newer show_rows cleared the table: its own slices fill it
        width, fit_width, source_width, info_width = self._layout
        rows = self.catalog_rows
        start = self.row_count
        for row in rows[start:start + count]:
            line = compose_line(row, width - 1, info_width, fit_width, source_width)
            self.add_row(Text(" ") + line, key=row.key)
        if schedule and self.row_count < len(rows):
            self.set_timer(0.001, lambda: self._fill(generation, FILL_SLICE))  # a real turn of the loop
        elif schedule and start and self.row_count == len(rows):
            settle_collector()  # a big table is in: its rows join what full passes skip

    def select_key(self, key: str) -> None:
        for index, row in enumerate(self.catalog_rows):
            if row.key == key:
                if index >= self.row_count:  # not added yet (a big table fills in slices)
                    self._fill(self._generation, index + 1 - self.row_count, schedule=False)
                self.move_cursor(row=index)
                return
