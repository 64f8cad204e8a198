"""The catalog's source filter and what the dashboard says about other tools' models.

No widgets here: the filter state, the labels of the source column, and the detail-pane text
of another tool's model (its tool, paths, size, GGUF facts, SHA-256 where the layout gives it,
and the other copies of its bytes on the box).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.style import Style
from rich.text import Text

from gguf_tui.store.allstores import SOURCE_ALL, SOURCE_FILTERS, TOOL_TITLES, AllStores
from gguf_tui.store.dedupe import DuplicateGroup
from gguf_tui.store.others import TOOL_OLLAMA, TOOL_OURS, OtherModel
from gguf_tui.tui.render import BOLD, DIM, Doc, Lines, clean, ellipsize, facts_line
from gguf_tui.units import format_size

# The source column's words: ours, then each tool as `ls --all` names it.
SOURCE_WIDTH = 9  # 'llama.cpp'
# The catalog opens on our models: it is where one acts (download, verify, delete), the other
# tools' models are read-only there, and a box's HF cache can hold thousands of files. What the
# others hold is in view anyway (the status bar's second figure, a line under our models, the
# prune screen); `s` lists them: all, then one tool at a time.
DEFAULT_SOURCE = TOOL_OURS


def source_label(tool: str) -> str:
    return "ours" if tool == TOOL_OURS else tool


@dataclass
class SourceFilter:
    """Which stores the catalog lists, and the last scan of the other tools' stores.

    `stores` is None until the first scan of the other stores finishes (the catalog shows our
    models at once and adds the others then)."""

    current: str = DEFAULT_SOURCE
    stores: AllStores | None = None
    error: str | None = None  # why the last scan of the other stores failed
    key_hint: str = "s"  # the filter key as the help shows it (a ui.keymap remap included)
    # The catalog's rows for (this scan, this filter): built once, not on every refresh.
    row_cache: Any = field(default=None, repr=False, compare=False)

    @property
    def found(self) -> bool:
        """Whether any other tool's model is on the box (the source column appears then)."""
        return self.stores is not None and bool(self.stores.others.models)

    @property
    def shows_ours(self) -> bool:
        return self.current in (TOOL_OURS, SOURCE_ALL)

    def tools_found(self) -> list[str]:
        if self.stores is None:
            return []
        present = {model.tool for model in self.stores.others.models}
        return [tool for tool in SOURCE_FILTERS[2:] if tool in present]

    def choices(self) -> list[str]:
        """The cycle of the filter key: ours, all, then each tool that has models here."""
        return [TOOL_OURS, SOURCE_ALL, *self.tools_found()]

    def next(self) -> str:
        choices = self.choices()
        index = choices.index(self.current) if self.current in choices else -1
        self.current = choices[(index + 1) % len(choices)]
        return self.current

    def shown_models(self) -> list[OtherModel]:
        """The other tools' models the current filter lists."""
        if self.stores is None or self.current == TOOL_OURS:
            return []
        return [m for m in self.stores.others.models if self.current in (SOURCE_ALL, m.tool)]

    def describe(self) -> str:
        """The filter in words for the catalog's title."""
        if self.current == SOURCE_ALL:
            return "all stores"
        return "ours only" if self.current == TOOL_OURS else f"{self.current} only"


def other_key(model: OtherModel) -> str:
    return f"other:{model.tool}:{model.root}:{model.name}"


def model_paths(model: OtherModel) -> list[str]:
    return [str(entry.data_path) for entry in model.files]


def copies_rows(groups: list[DuplicateGroup], own_paths: list[str]) -> list[str]:
    """One line per other copy of the same bytes, and what linking them would free."""
    rows = []
    own = set(own_paths)
    for group in groups:
        for copy in group.copies:
            if str(copy.path) in own:
                continue
            rows.append(f"[{source_label(copy.tool)}] {clean(copy.model, 80)}")
            rows.append(f"  {clean(str(copy.path), 300)}")
        if group.reclaimable_bytes:
            rows.append(f"  same SHA-256 {group.sha256[:12]}…: linking frees {format_size(group.reclaimable_bytes)}"
                        " (gguf-tui dedupe)")
        elif group.across_filesystems:
            rows.append("  on other filesystems: hard links cannot join them")
    return rows


def short_path(path: Path, root: Path) -> str:
    """`path` under its store root, a hash-named part cut short (the sha256 row has it whole)."""
    try:
        parts = list(path.relative_to(root).parts)
    except ValueError:
        parts = list(path.parts)
    for index, part in enumerate(parts):
        bare = part.removeprefix("sha256-")
        if len(bare) >= 40 and all(c in "0123456789abcdef" for c in bare):
            parts[index] = part[: len(part) - len(bare) + 12] + "…"
    return clean("/".join(parts), 300)


def other_detail(model: OtherModel, stores: AllStores | None) -> Doc:
    """Another tool's model as the detail pane shows it: read-only facts, and D deletes it."""
    lines = Lines().title(clean(model.name))
    facts = facts_line(model.gguf.get("architecture"), model.gguf.get("parameter_count"),
                       model.gguf.get("context_length"), model.gguf.get("quantization"))
    if facts:
        lines.note(facts, style=Style())
    lines.row("tool", f"{source_label(model.tool)} · {TOOL_TITLES.get(model.tool, model.tool)}")
    lines.row("root", clean(str(model.root), 300))
    if model.problem:
        lines.row("state", f"broken: {clean(model.problem, 300)}", style=BOLD)
    size = format_size(model.size) + (f" in {len(model.files)} files" if len(model.files) > 1 else "")
    lines.row("size", size)
    file_rows: list[str] = []
    for entry in model.files:
        role = "" if entry.role in ("model", "part") else f"  ({entry.role})"
        file_rows.append(f"{short_path(entry.path, model.root)}  {format_size(entry.size)}{role}")
        if entry.data_path != entry.path:
            file_rows.append(f"  → {short_path(entry.data_path, model.root)}")
        if entry.links > 1:
            file_rows.append(f"  {entry.links} hard links to these bytes (one copy on disk)")
    lines.rows("files", file_rows or ["none usable"])
    sha_rows = [
        f"{entry.sha256} (from the layout)" if entry.sha256 else
        f"{ellipsize(clean(entry.path.name), 40)}: not in the layout (gguf-tui dedupe hashes it)"
        for entry in model.files
    ]
    if sha_rows:
        lines.rows("sha256", sha_rows)
    if model.revision:
        lines.row("revision", clean(model.revision, 60)[:12])
    if model.manifest is not None:
        lines.row("manifest", clean(str(model.manifest), 300))
    if stores is not None:
        copies = copies_rows(stores.groups_of(model_paths(model)), model_paths(model))
        if copies:
            lines.rows("copies", copies)
    lines.blank()
    lines.note(f"read-only here: D deletes it from {TOOL_TITLES.get(model.tool, model.tool)} the way "
               f"{source_label(model.tool)} would (asks first); gguf-tui import --from {model.tool} "
               "adopts it without copying")
    return lines.done()


def add_copies(doc: Doc, stores: AllStores | None, paths: list[str]) -> Doc:
    """Our model's detail, plus the other copies of its bytes in other tools' stores."""
    if stores is None:
        return doc
    rows = copies_rows(stores.groups_of(paths), paths)
    for index, row in enumerate(rows):
        doc.entries.append(("copies" if index == 0 else "", Text(row)))
    return doc


def others_heading_detail(sources: SourceFilter) -> Doc:
    """The other tools' stores: where they are, what they hold, what could not be read."""
    lines = Lines().title("Other tools' stores")
    stores = sources.stores
    if stores is None:
        return lines.note(sources.error or "scanning…").done()
    others = stores.others
    for tool, roots in others.roots.items():
        models = others.of_tool(tool)
        size = format_size(sum(m.size for m in models))
        lines.row(source_label(tool), f"{len(models)} model{'s' if len(models) != 1 else ''} · {size}")
        for root in roots:
            lines.row("", clean(str(root), 300), style=DIM)
    lines.row("total", f"{format_size(stores.other_stores_bytes)} (hard links counted once)")
    if stores.duplicates:
        lines.row("dupes", f"{len(stores.duplicates)} file(s) stored more than once: linking frees "
                  f"{format_size(stores.reclaimable_bytes)} (gguf-tui dedupe)")
    for skipped in others.skipped[:5]:
        lines.row("skipped", f"[{source_label(skipped.tool)}] {clean(str(skipped.path), 200)}: "
                  f"{clean(skipped.reason, 200)}")
    if len(others.skipped) > 5:
        lines.row("", f"… and {len(others.skipped) - 5} more (gguf-tui ls --all)")
    return lines.done()


def info_parts(model: OtherModel, duplicate: bool) -> list[tuple[str, Any]]:
    """The catalog's info column for another tool's model."""
    return [
        (clean(model.gguf.get("quantization") or "", 20), None),
        ("broken" if model.problem else "", BOLD),
        ("dup" if duplicate else "", DIM),
    ]


def delete_rule(model: OtherModel) -> str:
    """What deleting from that tool's store removes, in that tool's own terms."""
    if model.tool == TOOL_OLLAMA:
        return ("its manifest is removed, and a blob only when no other Ollama model uses it "
                "(what `ollama rm` does).")
    if model.revision is not None:
        return ("its snapshot link is removed, and a blob only when no other snapshot uses it "
                "(what `hf cache delete` does).")
    return "its files are removed; a projector only when no other model in the folder uses it."


def others_summary(models: list[OtherModel]) -> Text:
    """Confirmation lines for other tools' models: each with its tool, then each tool's rule."""
    body = Text()
    for model in models[:8]:
        body.append(f"  [{source_label(model.tool)}] {ellipsize(clean(model.name), 50)}  "
                    f"{format_size(model.size)}\n")
    if len(models) > 8:
        body.append(f"  … and {len(models) - 8} more models of other tools\n")
    for tool in dict.fromkeys(model.tool for model in models):
        first = next(model for model in models if model.tool == tool)
        body.append(f"\nFrom {TOOL_TITLES.get(tool, tool)}: {delete_rule(first)} "
                    f"{source_label(tool)} will not find {'it' if len(models) == 1 else 'them'} again.")
    return body
