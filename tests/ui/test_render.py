"""Pure pieces of the dashboard: formats, the job view model, detail wrapping, theme files."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text

from gguf_tui.engine.events import Progress, Retrying, StateChanged
from gguf_tui.engine.spec import JobState
from gguf_tui.tui.keys import check_keymap
from gguf_tui.tui.render import Lines, format_pair, queue_name, short_age, state_word
from gguf_tui.tui.theming import ThemeFileError, theme_from_data
from gguf_tui.tui.views import JobView


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
    view = view.apply(StateChanged(1, "m", JobState.DOWNLOADING))
    view = view.apply(Progress(1, "m", 40, 100, 10.0, 6.0))
    assert (view.bytes_done, view.percent, view.remaining) == (40, 40.0, 60)
    view = view.apply(Retrying(1, "m", 1, 2, "checksum mismatch", 0.0))
    assert state_word(view) == "retrying 1/2"
    view = view.apply(StateChanged(1, "m", JobState.PAUSED, "disk full"))
    assert view.speed == 0 and view.eta is None and view.message == "disk full"
    assert view.apply(StateChanged(1, "m", JobState.PAUSED, "moved")).message == "disk full"
    assert view.apply(StateChanged(1, "m", JobState.COMPLETED)).bytes_done == 100
    assert view.apply(StateChanged(1, "m", JobState.CANCELLED)).remaining == 0
    elsewhere = view.apply(StateChanged(1, "m", JobState.ELSEWHERE))
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


def test_keymap_check_suggests_ids():
    known, warnings = check_keymap({"pause": "x", "puase": "y"})
    assert known == {"pause": "x"}
    assert "did you mean 'pause'" in warnings[0]
