"""The catalog's fit column against the Hub imitation, on GPUs stated by hand."""

from __future__ import annotations

import pytest

from gguf_tui.tui.app import GgufApp
from tests.helpers.fitrepo import FIT_GPUS, FIT_REPO, make_fit_quants
from tests.helpers.hubsim import HubSim
from tests.ui.conftest import detail_text, wait_for


@pytest.fixture(scope="module")
def fit_files(tmp_path_factory: pytest.TempPathFactory):
    return make_fit_quants(tmp_path_factory.mktemp("fitquants"))


@pytest.fixture
async def fit_hub(fit_files, monkeypatch: pytest.MonkeyPatch):
    async with HubSim() as sim:
        sim.add_repo(FIT_REPO, fit_files, downloads=5_000)
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        monkeypatch.delenv("GGUF_TUI_GPUS", raising=False)  # the config's stated GPUs count
        yield sim


def fit_cells(app) -> dict[str, str]:
    """Quant -> its fit cell, for the quants the catalog shows."""
    rows = app.query_one("#catalog").catalog_rows
    return {row.group.quant: row.fit for row in rows if row.kind == "quant"}


def judged(app) -> bool:
    cells = fit_cells(app)
    return bool(cells) and all(cell and cell != "…" for cell in cells.values())


async def open_fit_repo(app, pilot) -> None:
    await pilot.press("slash", *"fit", "enter")
    await wait_for(pilot, lambda: app.current_row() is not None and app.current_row().kind == "repo", what="results")
    await pilot.press("enter")
    await wait_for(pilot, lambda: judged(app), what="fit verdicts")


async def test_fit_column_filter_and_context(config, fit_hub):
    config.hub.endpoint = fit_hub.endpoint
    config.fit.gpus = FIT_GPUS
    app = GgufApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_fit_repo(app, pilot)
        assert fit_cells(app) == {"Q4_0": "✓ GPU", "Q8_0": "✓ GPU", "F16": "○ RAM"}
        # Every quant's headers were read once, through the cache.
        assert app.fit.cache.reads == 3
        table = app.query_one("#catalog")
        lines = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert any("Q4_0" in line and "✓ GPU" in line for line in lines), lines  # drawn on its line
        assert any("F16" in line and "○ RAM" in line for line in lines), lines

        # f: only what fits (GPU or partial) stays; again: everything.
        await pilot.press("f")
        await wait_for(pilot, lambda: set(fit_cells(app)) == {"Q4_0", "Q8_0"}, what="filter")
        assert any("1 quant(s) that do not fit hidden" in row.label.plain
                   for row in app.query_one("#catalog").catalog_rows)  # fmt: skip
        await pilot.press("f")
        await wait_for(pilot, lambda: set(fit_cells(app)) == {"Q4_0", "Q8_0", "F16"}, what="unfiltered")

        # x: 4k, then 8k, then 32k; verdicts change, and no header is read again.
        await pilot.press("x")
        await wait_for(pilot, lambda: fit_cells(app)["F16"] == "◐ 1/4", what="4k verdicts")
        assert fit_cells(app)["Q8_0"] == "✓ GPU"
        await pilot.press("x", "x")
        await wait_for(pilot, lambda: fit_cells(app)["Q8_0"] == "◐ 3/4", what="32k verdicts")
        assert fit_cells(app)["Q4_0"] == "✓ GPU"
        assert app.fit.cache.reads == 3
        assert "fit @32k" in str(app.query_one("#catalog").border_title)
        # At 32k the filter keeps the partly offloaded Q8_0 too.
        await pilot.press("f")
        await wait_for(pilot, lambda: "F16" not in fit_cells(app), what="filter at 32k")
        assert set(fit_cells(app)) == {"Q4_0", "Q8_0"}


async def test_detail_shows_the_breakdown(config, fit_hub):
    config.hub.endpoint = fit_hub.endpoint
    config.fit.gpus = FIT_GPUS
    app = GgufApp(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_fit_repo(app, pilot)
        catalog = app.query_one("#catalog")
        catalog.select_key(next(r.key for r in catalog.catalog_rows if r.kind == "quant" and r.group.quant == "Q8_0"))
        await wait_for(pilot, lambda: "weights" in detail_text(app), what="breakdown")
        await wait_for(pilot, lambda: "arch llama" in detail_text(app), what="remote facts")
        assert app.fit.cache.reads == 3  # the facts line and the fit column share one read
        text = detail_text(app)
        for part in ("at context 8192 with f16 KV cache", "KV cache", "overhead", "total", "on GPU",
                     "verdict", "largest context wholly on GPU"):
            assert part in text, (part, text)
        await pilot.press("x", "x", "x")  # 32k
        await wait_for(pilot, lambda: "at context 32768" in detail_text(app), what="breakdown at 32k")
        assert "partial offload" in detail_text(app)


async def test_help_and_palette_list_the_fit_keys(config):
    from gguf_tui.tui.screens.help import help_entries

    config.ui.keymap = {"ctx_cycle": "X"}
    app = GgufApp(config)
    async with app.run_test() as pilot:
        entries = {binding_id: shown for _, rows in help_entries(app, app.keymap) for shown, _, binding_id in rows}
        assert entries["fit_filter"] == "f" and entries["ctx_cycle"] == "X"
        palette = {command.title: command.help for command in app.get_system_commands(app.screen)}
        assert "(f)" in palette["Show quants that fit"] and "(X)" in palette["Cycle fit context"]
        await pilot.pause()
