"""Text for the panes: state words, queue cells, sizes, ages and the detail pane's contents.

Everything returns `rich.text.Text` built from plain strings, never markup: remote names such as
`[bold]x[/]` or `[0]` show exactly as typed. Remote strings pass through `plain()` (escape
sequences and control characters stripped) before they get here or here.
"""

from __future__ import annotations

import io
import time
from typing import Any, Callable, Iterable

from rich.console import Console
from rich.style import Style
from rich.text import Text

from gguf_tui.engine.api import JobState, ResumeView
from gguf_tui.textsafe import plain, redact_url
from gguf_tui.tui.views import JobView
from gguf_tui.units import floor_percent, format_eta, format_rate, format_size

Clock = Callable[[], float]
StyleFor = Callable[[str], Style]

STATE_VARIABLES: dict[JobState, str] = {
    JobState.QUEUED: "download-queued",
    JobState.DOWNLOADING: "download-active",
    JobState.PAUSED: "download-paused",
    JobState.RETRYING: "download-retrying",
    JobState.VERIFYING: "download-verifying",
    JobState.COMPLETED: "download-done",
    JobState.FAILED: "download-failed",
    JobState.CANCELLED: "download-queued",
    JobState.ELSEWHERE: "download-elsewhere",
}

DIM = Style(dim=True)
BOLD = Style(bold=True)


def no_style(_variable: str) -> Style:
    return Style()


def clean(text: object, limit: int = 300) -> str:
    """A remote string made safe and short enough for one line."""
    value = " ".join(plain(text).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def ellipsize(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


# ---- queue -------------------------------------------------------------------------------------


def state_word(job: JobView, width: int = 30) -> str:
    if job.state == JobState.RETRYING and job.retry_max:
        return f"retrying {job.retry_attempt}/{job.retry_max}"
    if job.state == JobState.RETRYING and job.retry_reason.startswith("waiting for network"):
        return "waiting for network" if width >= 19 else "no network"  # an outage: no count
    if job.state == JobState.DOWNLOADING and job.phase == "re-checking":
        return "re-checking"
    word = job.state.value
    if job.state == JobState.ELSEWHERE:
        # Someone else's job: its owner's word ("queued elsewhere", "downloading (user alice)").
        word = job.state_label
        if len(word) > width:
            short = f"user {job.owner_user}" if job.owner_user else ""
            return short if short and len(short) <= width else "elsewhere"
    return word


def format_pair(done: int, total: int | None) -> str:
    """'2.11/5.29 GB': bytes done over total, in the total's unit."""
    if total is None:
        return format_size(done) if done else ""
    value = float(max(total, 1))
    divisor, unit = 1.0, "B"
    for candidate in ("kB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value /= 1000
        divisor *= 1000
        unit = candidate
    if unit == "B":
        return f"{done}/{total} B"
    digits = 2 if total / divisor < 10 else 1
    return f"{done / divisor:.{digits}f}/{total / divisor:.{digits}f} {unit}"


def queue_name(name: str, width: int) -> str:
    """The model name without its owner, cut in the middle so ':QUANT' stays visible."""
    text = clean(name)
    if "/" in text and len(text) > width:
        text = text.split("/", 1)[1]
    if len(text) <= width:
        return text
    head, sep, tail = text.rpartition(":")
    if sep and len(tail) + 2 < width:
        return ellipsize(head, width - len(tail) - 1) + ":" + tail
    return ellipsize(text, width)


# Widths of the queue's number columns, each with its leading space: '100%', '402.7/402.7 MB'
# (the longest format_pair), '999.9 MB/s', '99:59:59' or 'stalled'.
QUEUE_NUMBER_WIDTHS = {"percent": 5, "bytes": 15, "speed": 11, "eta": 9}


# An ETA past this (or a speed under STALLED_SPEED) says nothing useful: "stalled" does.
STALLED_ETA = 100 * 3600.0
STALLED_SPEED = 1024.0


def percent_text(job: JobView) -> str:
    """'42%', floored: it reads 100% only when every byte is there."""
    percent = floor_percent(job.bytes_done, job.total)
    return "" if percent is None else f"{percent}%"


def eta_text(job: JobView) -> str:
    """'0:17', '12:04:55', or 'stalled' when the rate gives no honest estimate."""
    if job.eta is None and not job.speed:
        return ""
    if job.speed < STALLED_SPEED or job.eta is None or job.eta >= STALLED_ETA:
        return "stalled"
    return format_eta(job.eta)


def fit_cell(value: str, width: int, *, right: bool = True) -> str:
    """`value` in exactly `width` cells with a leading space, so columns never run together."""
    room = max(0, width - 1)
    value = ellipsize(value, room)
    return " " + (value.rjust(room) if right else value.ljust(room))


def queue_cells(
    job: JobView,
    style_for: StyleFor,
    *,
    name_width: int,
    state_width: int,
    widths: dict[str, int] | None = None,
) -> dict[str, Text]:
    """The cells of one queue row, keyed by column; numeric cells padded to `widths`."""
    widths = widths or QUEUE_NUMBER_WIDTHS
    active = job.state in (JobState.DOWNLOADING, JobState.RETRYING) or (
        job.state == JobState.ELSEWHERE and job.phase == "downloading elsewhere"
    )
    show_progress = job.state not in (JobState.CANCELLED,) and bool(job.bytes_done or active)
    numbers = {
        "percent": percent_text(job) if show_progress else "",
        "bytes": format_pair(job.bytes_done, job.total) if show_progress else "",
        "speed": format_rate(job.speed) if active and job.speed else "",
        "eta": eta_text(job) if active else "",
    }
    cells = {
        "name": Text(queue_name(job.name, name_width), no_wrap=True),
        "state": Text(
            state_word(job, state_width), style=style_for(STATE_VARIABLES[job.state]), no_wrap=True
        ),
    }
    for column, value in numbers.items():
        cells[column] = Text(fit_cell(value, widths[column]), no_wrap=True)
    return cells


# ---- partial downloads ---------------------------------------------------------------------


def partial_sizes(partial: Any) -> tuple[int | None, int]:
    """(bytes downloaded, bytes reserved on disk) of a partial download.

    They differ a lot: a download reserves (preallocates) its whole size at the start, so a
    partial of 15 MB downloaded can hold 134 MB. Downloaded comes from its resume state (None
    if unreadable), reserved from the blocks the files hold, which is what deleting it frees.
    """
    downloaded = getattr(partial, "bytes_downloaded", None)
    if downloaded is None:
        downloaded = partial.bytes_done
    reserved = getattr(partial, "bytes_reserved", None)
    if reserved is None:
        reserved = partial.size
    return downloaded, reserved


def partials_summary(partials: list[Any], *, noun: bool = True) -> str:
    """'2 partials: 15.0 MB downloaded, 134.2 MB reserved' ('2 · ...' without the noun)."""
    downloaded = sum(partial_sizes(p)[0] or 0 for p in partials)
    reserved = sum(partial_sizes(p)[1] for p in partials)
    what = (" partial:" if len(partials) == 1 else " partials:") if noun else " ·"
    return f"{len(partials)}{what} {format_size(downloaded)} downloaded, {format_size(reserved)} reserved"


# ---- small formats -----------------------------------------------------------------------------


def ago(timestamp: float | None, now: float) -> str:
    if not timestamp:
        return "never"
    seconds = max(0.0, now - timestamp)
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def short_age(timestamp: float | None, now: float) -> str:
    """'2d', '5h', '3m', 'now' for table cells; '-' when never."""
    if not timestamp:
        return "-"
    seconds = max(0.0, now - timestamp)
    for limit, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= limit:
            return f"{int(seconds // limit)}{unit}"
    return "now"


def iso_time(text: str | None) -> float | None:
    """Seconds since the epoch of an ISO 8601 time as the Hub sends it ('2024-05-01T12:00:00.000Z')."""
    if not text:
        return None
    from datetime import datetime, timezone

    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def humane_time(timestamp: float | None, now: float) -> str:
    """'3 d ago (2026-09-18)': how long ago, then the local date; a future time shows its date."""
    if timestamp is None:
        return "unknown"
    day = time.strftime("%Y-%m-%d", time.localtime(timestamp))
    if timestamp > now + 60:
        return day
    return f"{ago(timestamp, now)} ({day})"


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def count(value: int | None) -> str:
    """1.2M, 880k, 42."""
    if value is None:
        return "-"
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            number = value / limit
            return f"{number:.1f}{suffix}" if number < 10 else f"{number:.0f}{suffix}"
    return str(value)


def parameters(value: int | None) -> str | None:
    if not value:
        return None
    if value >= 1_000_000_000:
        return f"{value / 1e9:.1f}B params"
    if value >= 1_000_000:
        return f"{value / 1e6:.0f}M params"
    if value >= 1_000:
        return f"{value / 1e3:.0f}k params"
    return f"{value} params"


def facts_line(arch: Any, params: int | None, context: int | None, quant: Any) -> str:
    parts = []
    if arch:
        parts.append(f"arch {clean(arch, 40)}")
    if p := parameters(params):
        parts.append(p)
    if context:
        parts.append(f"ctx {context}")
    if quant:
        parts.append(clean(quant, 30))
    return " · ".join(parts)


# ---- detail pane -------------------------------------------------------------------------------


_WRAP_CONSOLE = Console(width=1000, file=io.StringIO(), color_system=None, legacy_windows=False)


def wrap(text: Text, width: int) -> list[Text]:
    """`text` broken into lines of at most `width` cells (long words are folded)."""
    if width <= 0:
        return [text]
    lines = list(text.wrap(_WRAP_CONSOLE, width, overflow="fold", no_wrap=False))
    for line in lines:
        line.rstrip()
    return lines or [Text("")]


class Doc:
    """The detail pane's content: full-width lines and label + value rows.

    Rendered at the pane's width so a wrapped value keeps its hanging indent under the label.
    """

    LABEL = 8  # the usual label column; a longer label widens it, keeping one space after

    def __init__(self) -> None:
        self.entries: list[tuple[str | None, Text]] = []

    def label_width(self) -> int:
        longest = max((len(label) for label, _ in self.entries if label), default=0)
        return max(self.LABEL, longest + 1)

    def render(self, width: int) -> Text:
        out = Text()
        label_width = self.label_width()
        for label, value in self.entries:
            if label is None:
                lines = wrap(value, width)
                for line in lines:
                    out.append_text(line)
                    out.append("\n")
                continue
            lines = wrap(value, max(10, width - label_width))
            for index, line in enumerate(lines):
                out.append((label if index == 0 else "").ljust(label_width), style=DIM)
                out.append_text(line)
                out.append("\n")
        out.rstrip()
        return out

    @property
    def plain(self) -> str:
        return self.render(10_000).plain


class Lines:
    """Builds a `Doc`: a title, notes, then label + value rows."""

    def __init__(self) -> None:
        self.doc = Doc()

    def title(self, value: str, style: Style = BOLD) -> Lines:
        self.doc.entries.append((None, Text(value, style=style)))
        return self

    def row(self, label: str, value: str | Text, style: Style | None = None) -> Lines:
        text = value.copy() if isinstance(value, Text) else Text(value, style=style or Style())
        self.doc.entries.append((label, text))
        return self

    def rows(self, label: str, values: Iterable[str | Text]) -> Lines:
        first = True
        for value in values:
            self.row(label if first else "", value)
            first = False
        return self

    def note(self, value: str, style: Style = DIM) -> Lines:
        self.doc.entries.append((None, Text(value, style=style)))
        return self

    def blank(self) -> Lines:
        self.doc.entries.append((None, Text("")))
        return self

    def done(self) -> Doc:
        return self.doc


def source_text(source: dict[str, Any]) -> str:
    """Where a model came from, with no credentials or query strings."""
    if not source:
        return "unknown"
    kind = source.get("kind")
    if kind == "hub":
        revision = clean(source.get("revision") or "", 60)
        name = clean(source.get("revision_name") or "", 40)
        rev = revision[:12] if len(revision) == 40 else revision
        where = f" @ {rev}" + (f" ({name})" if name and name != revision else "")
        endpoint = source.get("endpoint")
        host = f" on {clean(redact_url(str(endpoint)), 80)}" if endpoint else ""
        return f"hub {clean(source.get('repo') or '?', 120)}{where}{host}"
    if kind == "url" or source.get("url"):
        return clean(redact_url(str(source.get("url") or "")), 200)
    if kind:
        return clean(kind, 60)
    return "unknown"


def job_detail(
    job: JobView,
    now: float,
    style_for: StyleFor = no_style,
) -> Doc:
    lines = Lines().title(clean(job.name))
    state = Text(state_word(job), style=style_for(STATE_VARIABLES[job.state]))
    progress = []
    if job.total and job.bytes_done:
        progress.append(percent_text(job))
    if job.bytes_done or job.total:
        progress.append(format_pair(job.bytes_done, job.total))
    if job.state in (JobState.DOWNLOADING, JobState.RETRYING) and job.speed:
        progress.append(format_rate(job.speed))
        eta = eta_text(job)
        if eta:
            progress.append(eta if eta == "stalled" else f"ETA {eta}")
    if progress and job.state != JobState.CANCELLED:
        state.append("  " + " · ".join(progress))
    lines.row("state", state)
    if job.message and job.message != "moved" and job.state != JobState.RETRYING:
        lines.row("", clean(job.message, 500))
    if job.state == JobState.RETRYING and job.retry_reason:
        count = f"{job.retry_attempt}/{job.retry_max}: " if job.retry_max else ""
        lines.row("retry", f"{count}{clean(job.retry_reason, 200)}")
    resumes = [(f.dest, f.resume) for f in job.files if f.resume is not None] if not job.state.is_final else []
    if resumes:
        for dest, resume in resumes:
            lines.rows("resume", resume_lines(dest, resume, now))
    elif job.state == JobState.PAUSED:
        lines.row("resume", "no partial data yet: starts from 0")
    lines.row("source", source_text(job.source))
    lines.rows(
        "files",
        (
            f"{ellipsize(clean(f.dest.rsplit('/', 1)[-1]), 44)}  {format_size(f.expected_size)}"
            + ("  (mmproj)" if f.role == "mmproj" else "")
            for f in job.files
        ),
    )
    expected = [f for f in job.files if f.expected_sha256]
    if expected:
        lines.rows("sha256", (f"{f.expected_sha256} (expected)" for f in expected))
    return lines.done()


def resume_lines(dest: str, state: ResumeView, now: float) -> list[str]:
    """Bytes done, byte ranges, validator and last save of one partial file."""
    name = clean(str(dest).rsplit("/", 1)[-1], 60)
    total = state.total
    ranges = list(state.ranges)
    validator = state.validator
    # The validator is a strong ETag (always quoted) or else a Last-Modified date.
    validator_text = (
        "no validator"
        if not validator
        else (f"etag {clean(validator, 40)}" if validator.startswith('"') else f"last-modified {clean(validator, 40)}")
    )
    shown = ", ".join(f"{format_size(s)}–{format_size(e)}" for s, e in ranges[:3])
    if len(ranges) > 3:
        shown += f", … ({len(ranges) - 3} more)"
    if not ranges:
        return [name, f"nothing on disk yet · saved {ago(state.saved_at, now)}"]
    return [
        name,
        f"{format_pair(state.bytes_done, total)} · {len(ranges)} range{'s' if len(ranges) != 1 else ''}",
        f"ranges {shown}",
        f"{validator_text} · saved {ago(state.saved_at, now)}",
    ]


def local_detail(model: Any, now: float, shared: dict[str, list[str]] | None = None) -> Doc:
    """A store model (`gguf_tui.store.scan.StoreModel`): facts, files, hashes, source, use.

    `shared` names, per file, the other models that list the same file (one copy on disk)."""
    lines = Lines().title(clean(model.name))
    facts = facts_line(model.architecture, model.parameter_count, model.context_length, model.quant)
    if facts:
        lines.note(facts, style=Style())
    state = clean(model.state, 40)
    if not model.managed and state == "unmanaged":
        state = "unmanaged: found in the store without a manifest (adopt: gguf-tui import)"
    lines.row("state", state, style=BOLD if model.state in ("corrupt", "modified", "incomplete") else None)
    if model.error:
        lines.row("problem", clean(model.error, 400), style=BOLD)
    files = list(model.files)
    size = format_size(model.size) + (f" in {len(files)} files" if len(files) > 1 else "")
    lines.row("size", size)
    lines.rows(
        "files",
        (
            f"{ellipsize(clean(f.relative), 52)}  {format_size(f.size)}"
            + ("  (mmproj)" if f.role == "mmproj" else "")
            + ("" if f.exists else "  MISSING")
            + ("  (symlink)" if f.is_symlink else "")
            for f in files
        ),
    )
    for relative, others in sorted((shared or {}).items()):
        names = ", ".join(clean(name, 60) for name in others)
        lines.row("shared", f"{ellipsize(clean(relative), 40)} also in {names}")
    sha_rows: list[str] = []
    for f in files:
        if not f.sha256:
            continue
        sha_rows.append(f.sha256)
        if f.verify_failed_at:
            sha_rows.append(f"  MISMATCH found {when(f.verify_failed_at)}: press V to re-check")
        elif f.verified_at and getattr(f, "has_reference", True):
            source = getattr(f, "sha256_source", "published")
            sha_rows.append(f"  verified {when(f.verified_at)} against the {source} hash")
        elif f.verified_at:
            # Only recorded: the bytes matched the hash taken while downloading, but no
            # published or user-given hash was there to compare with.
            sha_rows.append(f"  recorded {when(f.verified_at)} (no published hash to verify)")
        else:
            sha_rows.append("  not verified yet (V verifies)")
    if sha_rows:
        lines.rows("sha256", sha_rows)
    elif model.managed:
        lines.row("sha256", "not recorded")
    if model.managed:
        lines.row("source", source_text(model.source))
    if model.license:
        lines.row("license", clean(model.license, 100))
    if model.added_at:
        lines.row("added", when(model.added_at))
    used = ago(model.last_used_at, now)
    if model.last_used_at:
        used += f" ({when(model.last_used_at)})"
    lines.row("used", used)
    return lines.done()
