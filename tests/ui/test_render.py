"""Pure pieces of the dashboard: formats, the job view model, detail wrapping, theme files."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text

from gguf_tui.engine.api import JobState, Progress, Retrying, StateChanged
from gguf_tui.tui.render import Lines, format_pair, queue_name, short_age, state_word
from gguf_tui.tui.theming import ThemeFileError, theme_from_data
from gguf_tui.tui.views import JobView, applied


def test_format_pair_uses_the_totals_unit():
    assert format_pair(2_116_000_000, 5_290_000_000) == "2.12/5.29 GB"
    assert format_pair(5_040_000_000, 42_000_000_000) == "5.0/42.0 GB"
    assert format_pair(0, None) == ""
    assert format_pair(512, 1000) == "0.51/1.00 kB"


def test_queue_name_keeps_the_quant_visible():
    assert queue_name("bartowski/Qwen3-8B-GGUF:Q4_K_M", 40) == "bartowski/Qwen3-8B-GGUF:Q4_K_M"
    assert queue_name("bartowski/Qwen3-8B-GGUF:Q4_K_M", 24) == "Qwen3-8B-GGUF:Q4_K_M"
    short = queue_name("unsloth/Llama-3.3-70B-Instruct-GGUF:Q4_K_M", 20)
    assert short.endswith(":Q4_K_M") and len(short) == 20
    assert queue_name("esc\x1b[31mred", 20) == "escred"


def test_job_view_follows_events():
    view = JobView(1, "m", JobState.QUEUED, total=100)
    view = applied(view, StateChanged(1, "m", JobState.DOWNLOADING))
    view = applied(view, Progress(1, "m", 40, 100, 10.0, 6.0))
    assert (view.bytes_done, view.percent, view.remaining) == (40, 40.0, 60)
    view = applied(view, Retrying(1, "m", 1, 2, "checksum mismatch", 0.0))
    assert state_word(view) == "retrying 1/2"
    view = applied(view, StateChanged(1, "m", JobState.PAUSED, "disk full"))
    assert view.speed == 0 and view.eta is None and view.message == "disk full"
    assert applied(view, StateChanged(1, "m", JobState.COMPLETED)).bytes_done == 100
    assert applied(view, StateChanged(1, "m", JobState.CANCELLED)).remaining == 0
    elsewhere = applied(view, StateChanged(1, "m", JobState.ELSEWHERE))
    assert state_word(elsewhere) == "downloading elsewhere" and state_word(elsewhere, 12) == "elsewhere"


def test_detail_rows_wrap_with_a_hanging_indent():
    doc = Lines().title("[bold]x[/]").row("sha256", "a" * 30 + " " + "b" * 30).done()
    lines = doc.render(40).plain.splitlines()
    assert lines[0] == "[bold]x[/]"
    assert lines[1].startswith("sha256  aaa")
    assert lines[2].startswith(" " * 8 + "bbb")
    assert "[bold]x[/]" in doc.plain and isinstance(doc.render(10), Text)


def test_short_ages():
    assert short_age(None, 100.0) == "-"
    assert short_age(100.0 - 2 * 86400, 100.0) == "2d"
    assert short_age(100.0 - 30, 100.0) == "now"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"primary": "#fff"}, "'name' is required"),
        ({"name": "x"}, "'primary' colour is required"),
        ({"name": "x", "primary": "nope"}, "not a colour"),
        ({"name": "x", "primary": "#fff", "primay": "#000"}, "did you mean 'primary'"),
        ({"name": "x", "primary": "#fff", "dark": "yes"}, "'dark' must be true or false"),
        ({"name": "x", "primary": "#fff", "variables": {"download-active": "??"}}, "not a colour"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_theme_files_name_the_problem(data, complaint):
    with pytest.raises(ThemeFileError, match=complaint.replace("(", r"\(")):
        theme_from_data(data, Path("t.yaml"))


def test_theme_file_becomes_a_theme():
    theme = theme_from_data(
        {"name": "t", "primary": "#123456", "dark": False, "variables": {"download-done": "#00ff00", "x": "1"}},
        Path("t.yaml"),
    )
    assert theme.name == "t" and not theme.dark and theme.variables["download-done"] == "#00ff00"


def _row(job: JobView, widths: dict[str, int]) -> str:
    from gguf_tui.tui.render import QUEUE_NUMBER_WIDTHS, queue_cells

    cells = queue_cells(job, no_style_for, name_width=20, state_width=12, widths=QUEUE_NUMBER_WIDTHS)
    for column, width in QUEUE_NUMBER_WIDTHS.items():
        assert len(cells[column].plain) == width, (column, cells[column].plain)
        assert cells[column].plain.startswith(" ")  # its own gap: never runs into its neighbour
    return "".join(cells[c].plain for c in ("percent", "bytes", "speed", "eta"))


def no_style_for(_variable: str):
    from rich.style import Style

    return Style()


def test_queue_cells_are_padded_and_percent_floors():
    """Issue 11.14: '2 B/s22884:11', '100%402.7/402.7 MB', and 100% with 0.4 MB to go."""
    from gguf_tui.tui.render import QUEUE_NUMBER_WIDTHS

    outage = JobView(1, "m", JobState.DOWNLOADING, bytes_done=2_000_000, total=402_700_000,
                     speed=2.0, eta=22884 * 3600 + 11 * 60)
    row = _row(outage, QUEUE_NUMBER_WIDTHS)
    assert "2 B/s  stalled" in row and "22884" not in row
    almost = JobView(2, "m", JobState.DOWNLOADING, bytes_done=402_300_000, total=402_700_000,
                     speed=5_000_000, eta=0.08)
    row = _row(almost, QUEUE_NUMBER_WIDTHS)
    assert row.startswith("  99% 402.3/402.7 MB") and "100" not in row.split("%")[0]
    done = JobView(3, "m", JobState.DOWNLOADING, bytes_done=402_700_000, total=402_700_000, speed=1e6, eta=0)
    assert _row(done, QUEUE_NUMBER_WIDTHS).startswith(" 100% 402.7/402.7 MB")
    slow = JobView(4, "m", JobState.DOWNLOADING, bytes_done=1, total=42_000_000_000, speed=400_000, eta=99 * 3600)
    assert _row(slow, QUEUE_NUMBER_WIDTHS).endswith(" 99:00:00")


def test_percent_floors_everywhere():
    from gguf_tui.units import floor_percent

    assert floor_percent(999, 1000) == 99 and floor_percent(1000, 1000) == 100
    assert floor_percent(0, 1000) == 0 and floor_percent(5, None) is None
    assert floor_percent(402_300_000, 402_700_000) == 99


def test_detail_labels_longer_than_the_column_keep_a_space():
    """Issue 11.14: 'partials2 · 402.7 MB' in the store's detail."""
    doc = Lines().row("models", "1").row("partials", "2 · 402.7 MB").done()
    lines = doc.render(60).plain.splitlines()
    assert lines[1].startswith("partials 2 · 402.7 MB")
    assert lines[0].startswith("models   1")  # the values stay in one column


def test_catalog_heading_runs_into_the_info_column():
    """Seen in tmux at 100 columns: 'Local models · 1 · 131.8…' cut short by an empty info column."""
    from gguf_tui.tui.catalog import CatalogRow, compose_line

    heading = CatalogRow("h:local", "heading", Text("Local models · 1 · 131.8 kB"))
    line = compose_line(heading, 40, 24)
    assert "131.8 kB" in line.plain and "…" not in line.plain
