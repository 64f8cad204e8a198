"""The Detail pane and the text it shows for Hub repos, quantisations and projector files.

Local models and downloads are rendered by `render.local_detail` / `render.job_detail`.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from gguf_tui.hub.models import HubFile, QuantGroup, RepoFiles, SearchResult
from gguf_tui.tui.render import DIM, Doc, Lines, clean, count, ellipsize, facts_line, humane_time, iso_time, partials_summary
from gguf_tui.units import format_size
from gguf_tui.store.scan import StoreSnapshot

HELP_TEXT = (
    "Nothing highlighted.\n\n"
    "/ searches the Hub · enter opens a repo · d downloads the highlighted quantisation\n"
    "tab moves between panes · ? lists every key"
)


class DetailPane(VerticalScroll, can_focus=True):
    """A scrollable plain-text view of whatever the focused pane highlights."""

    HELP = "Facts about the highlighted model, file or download. Scroll with the arrow keys."

    def compose(self):
        yield Static(Text(HELP_TEXT, style=DIM), id="detail-text", markup=False)

    shown: Doc | Text = Text(HELP_TEXT)

    def show(self, content: Doc | Text) -> None:
        """Show a Doc (wrapped to the pane's width, hanging indents) or a plain Text."""
        self.shown = content
        self._paint()

    def _paint(self) -> None:
        content = self.shown
        if isinstance(content, Doc):
            width = max(20, self.scrollable_content_region.width - 1)
            content = content.render(width)
        self.query_one("#detail-text", Static).update(content)

    def on_resize(self) -> None:
        if isinstance(self.shown, Doc):
            self._paint()


def remote_facts_text(facts: Any) -> tuple[str, Style]:
    """One line for GGUF facts read from the Hub: facts, 'reading…', or the error."""
    if facts is None:
        return "reading the GGUF header from the Hub…", DIM
    if isinstance(facts, str):
        return f"GGUF header not readable: {clean(facts, 300)}", Style(bold=True)
    line = facts_line(facts.architecture, facts.parameter_count, facts.context_length, facts.quantization)
    if facts.split_count and facts.split_count > 1:
        line += f" · {facts.split_count} parts"
    if facts.is_mmproj and facts.projector_type:
        line += f" · projector {clean(facts.projector_type, 30)}"
    return line or "no facts in the GGUF header", Style()


def _file_rows(hub_files: tuple[HubFile, ...] | list[HubFile], mmproj: HubFile | None) -> list[str]:
    rows = [f"{ellipsize(clean(f.name), 48)}  {format_size(f.size)}" for f in hub_files]
    if mmproj is not None:
        rows.append(f"{ellipsize(clean(mmproj.name), 48)}  {format_size(mmproj.size)}  (mmproj)")
    return rows


def _sha_rows(hub_files: list[HubFile]) -> list[str]:
    rows = []
    for f in hub_files:
        rows.append(f"{f.sha256} (Hub LFS)" if f.sha256 else "not published: hashed while downloading")
    return rows


def repo_detail(
    result: SearchResult | None, repo: str, files: RepoFiles | None, error: str | None, now: float
) -> Doc:
    lines = Lines().title(clean(repo, 200))
    if result is not None:
        lines.row("hub", f"↓{count(result.downloads)} downloads · ♥{count(result.likes)}"
                  + (" · gated: needs a token with access" if result.gated else ""))
        if result.last_modified:
            updated = iso_time(result.last_modified)
            lines.row("updated", humane_time(updated, now) if updated else clean(result.last_modified, 40))
    if error:
        lines.row("error", clean(error, 500), style=Style(bold=True))
    elif files is None:
        lines.note("enter lists its quantisations · d downloads Q4_K_M (or the closest)")
    else:
        if files.license:
            lines.row("license", clean(files.license, 100))
        if files.commit:
            lines.row("commit", files.commit[:12])
        lines.row("quants", ", ".join(clean(g.quant) for g in files.quants if g.quant) or "none")
        if files.mmprojs:
            lines.row("mmproj", ", ".join(clean(f.name, 60) for f in files.mmprojs))
        for skipped in files.skipped[:5]:
            lines.row("skipped", f"{clean(skipped.path, 80)}: {clean(skipped.reason, 80)}")
    return lines.done()


def quant_detail(
    files: RepoFiles,
    group: QuantGroup,
    mmproj: HubFile | None,
    facts: Any,
    status: str,
    fit: list[str] | None = None,
) -> Doc:
    title = f"{clean(files.repo)} : {clean(group.quant) if group.quant else clean(group.name)}"
    lines = Lines().title(title)
    text, style = remote_facts_text(facts)
    lines.note(text, style=style)
    total = group.total_size + (mmproj.size or 0 if mmproj else 0)
    parts = "1 file" if group.part_count == 1 else f"{group.part_count} parts"
    lines.row("size", f"{format_size(total)} · {parts}" + (" + mmproj" if mmproj else ""))
    if not group.complete:
        missing = ", ".join(str(p) for p in group.missing_parts) or "sizes unknown"
        lines.row("missing", f"part(s) {missing}: this quant cannot be downloaded", style=Style(bold=True))
    lines.rows("files", _file_rows(group.files, mmproj))
    lines.rows("sha256", _sha_rows(list(group.files) + ([mmproj] if mmproj else [])))
    if files.license:
        lines.row("license", clean(files.license, 100))
    if files.gated:
        lines.row("gated", "needs HF_TOKEN (or $HF_HOME/token) with access")
    lines.row("status", status or "not downloaded · d downloads it")
    if fit:
        lines.rows("fit", [clean(line.strip(), 300) for line in fit])
    return lines.done()


def mmproj_detail(files: RepoFiles, hub_file: HubFile, facts: Any, status: str) -> Doc:
    lines = Lines().title(f"{clean(files.repo)} : {clean(hub_file.name)}")
    text, style = remote_facts_text(facts)
    lines.note(text, style=style)
    lines.row("size", format_size(hub_file.size))
    lines.rows("sha256", _sha_rows([hub_file]))
    lines.note("the vision projector: downloading a quant brings it along")
    lines.row("status", status or "not downloaded · d downloads only this file")
    return lines.done()


def heading_detail(snapshot: StoreSnapshot | None) -> Doc:
    lines = Lines().title("Store")
    if snapshot is None:
        return lines.note("scanning…").done()
    lines.row("root", clean(str(snapshot.root), 300))
    lines.row("models", f"{len(snapshot.models)} · {format_size(snapshot.total_size)}")
    lines.row("free", format_size(snapshot.free_space) if snapshot.free_space is not None else "?")
    if snapshot.partials:
        lines.row("partials", f"{partials_summary(snapshot.partials, noun=False)} (p: prune)")
    for problem in snapshot.problems[:5]:
        lines.row("problem", clean(problem.message, 300))
    return lines.done()

