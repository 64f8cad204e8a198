"""Local models in the dashboard: live catalog, delete with confirmation, prune, verify, safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gguf_tui.engine.api import JobState, PullOptions
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.screens.confirm import ConfirmScreen
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.units import format_size
from tests.helpers.ggufgen import make_gguf
from tests.ui.conftest import detail_text, rows_text, wait_for


def local_rows(app) -> dict[str, object]:
    return {r.model.name: r for r in app.query_one("#catalog").catalog_rows if r.kind == "local"}


async def pull(app, pilot, server, name: str, data: bytes) -> None:
    server.add(f"/{name}.gguf", data)
    job_id = await app.engine.enqueue(server.url(f"/{name}.gguf"), PullOptions(name=name))
    await wait_for(pilot, lambda: job_id in app.jobs and app.jobs[job_id].state == JobState.COMPLETED, what=f"pull {name}")
    await wait_for(pilot, lambda: name in local_rows(app), what=f"{name} listed")


@pytest.fixture
def sized_ggufs(tmp_path: Path) -> dict[str, bytes]:
    return {
        name: make_gguf(tmp_path / "src" / f"{name}.gguf", tensor_bytes=size, seed=i).read_bytes()
        for i, (name, size) in enumerate((("small", 256 << 10), ("medium", 512 << 10), ("large", 1 << 20)))
    }


async def test_delete_asks_then_deletes(config, server, gguf_bytes, store):
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready and app.snapshot is not None, what="start")
        await pull(app, pilot, server, "alpha", gguf_bytes)
        catalog = app.query_one("#catalog")
        catalog.select_key("local:alpha")
        await pilot.pause()
        assert "sha256" in detail_text(app) and "recorded" in detail_text(app)  # plain URL: no published hash
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert (store / "alpha.gguf").exists()
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: "alpha" not in local_rows(app), what="gone from catalog")
        assert not (store / "alpha.gguf").exists()
        assert any("freed" in n.message for n in app._notifications)


async def test_verify_key(config, server, gguf_bytes, store):
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready and app.snapshot is not None, what="start")
        await pull(app, pilot, server, "alpha", gguf_bytes)
        app.query_one("#catalog").select_key("local:alpha")
        await pilot.press("V")
        await wait_for(pilot, lambda: any("matches its SHA-256" in n.message for n in app._notifications), what="verified")
        # A flipped byte is found and reported, not a crash.
        data = bytearray((store / "alpha.gguf").read_bytes())
        data[-10] ^= 0xFF
        (store / "alpha.gguf").write_bytes(bytes(data))
        await pilot.press("V")
        await wait_for(pilot, lambda: any("failed verification" in n.message for n in app._notifications), what="mismatch")


async def test_prune_marks_two_and_frees_their_sum(config, store, sized_ggufs):
    store.mkdir(parents=True, exist_ok=True)
    for name, data in sized_ggufs.items():
        (store / f"{name}.gguf").write_bytes(data)
    app = GgufApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and len(app.snapshot.models) == 3, what="scan")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune screen")
        screen = app.screen
        assert [m.name for m in screen.sorted_models()] == ["large", "medium", "small"]
        await pilot.press("u")  # by last use, then back to size
        await pilot.press("s")
        await pilot.press("space", "space")  # marks large, then medium
        models, partials = screen.marked_items()
        assert sorted(m.name for m in models) == ["large", "medium"] and not partials
        expected = sum(m.disk_bytes for m in models)
        assert f"frees {format_size(expected)}" in str(screen.query_one("#prune-summary").render())
        size_before = app.snapshot.total_size
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: not (store / "large.gguf").exists() and not (store / "medium.gguf").exists())
        assert (store / "small.gguf").exists()
        await wait_for(pilot, lambda: any(f"freed {format_size(expected)}" in n.message for n in app._notifications))
        await wait_for(pilot, lambda: [m.name for m in screen.snapshot.models] == ["small"], what="screen refreshed")
        assert app.snapshot.total_size == size_before - expected
        await pilot.press("escape")
        assert not isinstance(app.screen, PruneScreen)


async def test_file_copied_in_appears_without_a_key(config, store, gguf_bytes):
    store.mkdir(parents=True, exist_ok=True)
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None, what="scan")
        await pilot.pause(0.5)  # the watcher is up
        temporary = store / ".copying.tmp"
        temporary.write_bytes(gguf_bytes)
        os.rename(temporary, store / "copied-Q4_K_M.gguf")
        await wait_for(pilot, lambda: "copied-Q4_K_M" in local_rows(app), timeout=10, what="live refresh")
        assert "unmanaged" in local_rows(app)["copied-Q4_K_M"].info.plain
        (store / "copied-Q4_K_M.gguf").unlink()
        await wait_for(pilot, lambda: "copied-Q4_K_M" not in local_rows(app), timeout=10, what="vanished")


async def test_remote_looking_names_show_as_typed(config, store, gguf_bytes):
    store.mkdir(parents=True, exist_ok=True)
    (store / "[bold]x[").mkdir()
    for name in ("[bold]x[/]", "[0]", "esc\x1b[31mred\x07"):
        (store / f"{name}.gguf").write_bytes(gguf_bytes)  # the first one: folder '[bold]x[' 
    app = GgufApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and len(app.snapshot.models) == 3, what="scan")
        lines = rows_text(app)
        assert any(line.strip() == "[bold]x[/]" for line in lines)
        assert any(line.strip() == "[0]" for line in lines)
        assert any(line.strip() == "escred" for line in lines)
        assert not any("\x1b" in line or "\x07" in line for line in lines)
        app.query_one("#catalog").select_key("unmanaged:[bold]x[/]")
        assert app.current_row().key == "unmanaged:[bold]x[/]"
        await pilot.pause()
        assert detail_text(app).startswith("[bold]x[/]")
        screenshot = app.export_screenshot()
        assert "[bold]x[/]" in screenshot.replace("&#160;", " ")
        assert "\x1b" not in screenshot
