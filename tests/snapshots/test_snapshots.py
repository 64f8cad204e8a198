"""Screenshots of the dashboard at 80x24 and 120x40 (pytest-textual-snapshot).

Plain `def` tests: snap_compare runs its own event loop. The engine, Hub and store are fixed
fakes (tests/snapshots/fakes.py) and the clock is frozen, so every run draws the same picture.
Accept new pictures with `pytest tests/snapshots --snapshot-update` after looking at them.
"""

from __future__ import annotations

import time

import pytest

from gguf_tui.tui.app import GgufApp
from tests.helpers.fitrepo import FIT_GPUS
from tests.snapshots.fakes import NOW, FakeEngine, FakeHub, FakeStore, FitHub, box_store, demo_jobs

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("GGUF_TUI_GPUS", raising=False)  # GPUs are stated in the config: same everywhere
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(config) -> GgufApp:
    config.fit.gpus = config.fit.gpus or "24G"  # never this machine's GPUs
    return GgufApp(config, engine=FakeEngine(), hub=FakeHub(), store=FakeStore(), clock=lambda: NOW)


async def _ready(pilot) -> None:
    app = pilot.app
    for _ in range(100):
        if app._engine_ready and app.snapshot is not None:
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def _search_and_open(pilot) -> None:
    await _ready(pilot)
    await pilot.press("slash", *"qwen3", "enter")
    await pilot.pause(0.1)
    await pilot.press("enter")  # open bartowski/Qwen3-8B-GGUF
    await pilot.pause(0.1)
    await pilot.press("down")  # its Q4_K_M quant
    await pilot.pause(0.4)  # remote GGUF facts arrive
    await _fit_judged(pilot)


async def _fit_judged(pilot) -> None:
    """Wait until every quant row has its fit cell (devices and headers are read by workers)."""
    app = pilot.app
    for _ in range(250):
        cells = [row.fit for row in app.query_one("#catalog").catalog_rows if row.kind == "quant"]
        if cells and all(cell and cell != "…" for cell in cells):
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_download_in_progress(snap_compare, config, size):
    assert snap_compare(make_app(config), terminal_size=size, run_before=_search_and_open)


@pytest.mark.parametrize("size", SIZES)
def test_detail_of_partial_download(snap_compare, config, size):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("tab", "down", "down")  # the queue, the paused 70B download
        await pilot.pause()
        if size == (80, 24):
            await pilot.press("tab")  # on a small terminal the detail pane grows when focused
        await pilot.pause()

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_prune_screen(snap_compare, config, size):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("p")
        await pilot.pause()
        await pilot.press("space")  # mark the biggest model
        await pilot.press("tab", "space")  # and the abandoned partial: downloaded and reserved apart
        await pilot.pause()

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, config, size):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


def polish_jobs() -> list:
    """Queue rows that used to run together: an outage (2 B/s), 0.4 MB short of done, finished."""
    import dataclasses

    from gguf_tui.engine.spec import JobState

    qwen, mistral, llama, phi = demo_jobs()
    return [
        dataclasses.replace(qwen, state=JobState.DOWNLOADING, bytes_done=15_000_000, total=402_700_000,
                            speed=2.0, eta=22884 * 3600 + 660),
        dataclasses.replace(mistral, state=JobState.DOWNLOADING, message="", bytes_done=402_300_000,
                            total=402_700_000, speed=9_500_000, eta=0.04, retry_attempt=0, retry_max=0,
                            retry_reason=""),
        dataclasses.replace(llama, state=JobState.COMPLETED, bytes_done=402_700_000, total=402_700_000),
        phi,
    ]


@pytest.mark.parametrize("size", SIZES)
def test_queue_columns_stay_apart(snap_compare, config, size):
    """Issue 11.14: padded cells, 'stalled' for an absurd ETA, 99% until the last byte."""
    app = GgufApp(config, engine=FakeEngine(polish_jobs()), hub=FakeHub(), store=FakeStore(), clock=lambda: NOW)

    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("tab")  # the queue: its detail under it
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_light_theme(snap_compare, config, size):
    """Issue 11.16: gguf-light's unfocused borders are darker than its background."""
    config.ui.theme = "gguf-light"
    assert snap_compare(make_app(config), terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("size", SIZES)
def test_no_color(snap_compare, config, size, monkeypatch):
    """Issue 11.15: NO_COLOR draws without colour; the focused pane has a heavy border."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make_app(config), terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("size", SIZES)
def test_fit_column(snap_compare, config, size, tmp_path_factory):
    """Issue 13.4: the fit column on a repo's quants (GPUs stated by hand), the breakdown of
    the highlighted quant in the detail pane. F16 reads "RAM" where about 2.2 GB of RAM is free."""
    config.fit.gpus = FIT_GPUS
    hub = FitHub(tmp_path_factory.mktemp("fitsnap"))
    app = GgufApp(config, engine=FakeEngine(), hub=hub, store=FakeStore(), clock=lambda: NOW)

    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("slash", *"fit", "enter")
        await pilot.pause(0.1)
        await pilot.press("enter")  # open acme/Fit-GGUF
        await pilot.pause(0.1)
        await _fit_judged(pilot)
        await pilot.press("down", "down")  # its second quant
        await _fit_judged(pilot)
        await pilot.pause(0.4)  # remote GGUF facts arrive
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def box_app(config) -> GgufApp:
    """The demo dashboard on a box where the HF cache, LM Studio, Ollama and llama.cpp hold
    models too (fixed names, sizes, paths and times: tests/snapshots/fakes.py)."""
    config.fit.gpus = config.fit.gpus or "24G"
    return GgufApp(config, engine=FakeEngine(), hub=FakeHub(), store=box_store(), clock=lambda: NOW)


async def _box_ready(pilot) -> None:
    app = pilot.app
    for _ in range(100):
        if app._engine_ready and app.snapshot is not None and app.sources.stores is not None:
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_catalog_every_store(snap_compare, config, size):
    """Issue 14: ours, then the other tools' models, each with its source; the status bar's
    second figure; the detail of the HF cache's copy of our Llama (a duplicate)."""

    async def run_before(pilot) -> None:
        await _box_ready(pilot)
        await pilot.press("s")  # from ours (the default) to every store
        await pilot.pause()
        pilot.app.query_one("#catalog").select_key(
            "other:hf:/home/ada/.cache/huggingface/hub/models--bartowski--Llama-3.1-8B-Instruct-GGUF:"
            "bartowski/Llama-3.1-8B-Instruct-GGUF/Llama-3.1-8B-Instruct-Q4_K_M.gguf")
        await pilot.pause()

    assert snap_compare(box_app(config), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_catalog_source_filter(snap_compare, config, size):
    """Issue 14: `s` from ours (the default) through all, hf and llama.cpp to LM Studio's
    models only (the title says which)."""

    async def run_before(pilot) -> None:
        await _box_ready(pilot)
        await pilot.press("s", "s", "s", "s")  # ours -> all -> hf -> llama.cpp -> lmstudio
        await pilot.pause()

    assert snap_compare(box_app(config), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_prune_screen_other_tools(snap_compare, config, size):
    """Issue 14: the reclaimable duplicate space, and `o` listing the other tools' models with
    their tool; LM Studio's model marked ("frees up to": a shared blob may stay)."""

    async def run_before(pilot) -> None:
        await _box_ready(pilot)
        await pilot.press("p")
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("down", "down", "down", "space")  # LM Studio's Qwen3: its tool named
        await pilot.pause()

    assert snap_compare(box_app(config), terminal_size=size, run_before=run_before)
