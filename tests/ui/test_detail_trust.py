"""The detail pane says what a hash proves and which other models share a file (issue 11.1, 11.2)."""

from __future__ import annotations

from pathlib import Path

from gguf_tui.engine.api import JobState, PullOptions
from gguf_tui.tui.app import GgufApp
from tests.helpers.ggufgen import add_managed_model, make_gguf, make_mmproj_gguf
from tests.ui.conftest import detail_text, wait_for


def local_keys(app) -> set[str]:
    return {r.key for r in app.query_one("#catalog").catalog_rows if r.kind == "local"}


async def show(app, pilot, key: str) -> str:
    await wait_for(pilot, lambda: key in local_keys(app), what=f"{key} listed")
    app.query_one("#catalog").select_key(key)
    await pilot.pause()
    return detail_text(app)


async def test_recorded_hash_is_not_called_verified(config, server, gguf_bytes):
    """A plain URL with no published SHA-256: the hash is recorded, never 'verified'."""
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready and app.snapshot is not None, what="start")
        job_id = await app.engine.enqueue(server.add("/plain.gguf", gguf_bytes), PullOptions(name="plain"))
        await wait_for(pilot, lambda: job_id in app.jobs and app.jobs[job_id].state == JobState.COMPLETED, what="pull")
        text = await show(app, pilot, "local:plain")
    assert "recorded" in text and "no published hash" in text
    assert "verified" not in text


async def test_published_hash_is_verified_and_shared_files_name_their_other_models(
    config, store: Path, tmp_path: Path
):
    model = make_gguf(tmp_path / "src" / "Tiny-Q4_K_M.gguf", tensor_bytes=64 << 10)
    other = make_gguf(tmp_path / "src" / "Tiny-Q8_0.gguf", tensor_bytes=64 << 10, seed=1)
    mmproj = make_mmproj_gguf(tmp_path / "src" / "mmproj-Tiny-F16.gguf")
    shared = "demo/Tiny-GGUF/mmproj-Tiny-F16.gguf"
    add_managed_model(store, "demo/Tiny-GGUF:Q4_K_M", {"demo/Tiny-GGUF/Tiny-Q4_K_M.gguf": model, shared: mmproj}, roles={shared: "mmproj"})
    add_managed_model(store, "demo/Tiny-GGUF:Q8_0", {"demo/Tiny-GGUF/Tiny-Q8_0.gguf": other, shared: mmproj}, roles={shared: "mmproj"})
    app = GgufApp(config)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None, what="start")
        text = await show(app, pilot, "local:demo/Tiny-GGUF:Q4_K_M")
    assert "against the published hash" in text
    assert "also in demo/Tiny-GGUF:Q8_0" in text


async def test_delete_that_cannot_complete_says_nothing_was_deleted(config, store: Path, tmp_path: Path):
    """A model is deleted whole or not at all; the dashboard must not say 'deleted … freed 0 B'."""
    from gguf_tui.tui.screens.confirm import ConfirmScreen

    model = make_gguf(tmp_path / "src" / "M-Q4_K_M.gguf", tensor_bytes=64 << 10)
    mmproj = make_mmproj_gguf(tmp_path / "src" / "mmproj-M.gguf")
    add_managed_model(store, "m", {"o/M/M-Q4_K_M.gguf": model, "o/M/mmproj-M.gguf": mmproj}, roles={"o/M/mmproj-M.gguf": "mmproj"})
    blocker = store / "o/M/mmproj-M.gguf"
    blocker.unlink()
    blocker.mkdir()  # a directory where a file of the model should be
    (blocker / "keep").write_text("x")
    app = GgufApp(config)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None, what="start")
        await show(app, pilot, "local:m")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: any("could not delete" in n.message for n in app._notifications), what="refusal")
        messages = [n.message for n in app._notifications]
    assert not any(m.startswith("deleted m") for m in messages), messages
    assert (store / "o/M/M-Q4_K_M.gguf").exists() and (blocker / "keep").exists()


async def test_completion_notice_says_recorded_without_a_published_hash(config, server, gguf_bytes):
    app = GgufApp(config)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app._engine_ready and app.snapshot is not None, what="start")
        await app.engine.enqueue(server.add("/plain.gguf", gguf_bytes), PullOptions(name="plain"))
        await wait_for(pilot, lambda: any("plain: downloaded" in n.message for n in app._notifications), what="notice")
        messages = [n.message for n in app._notifications if n.message.startswith("plain: downloaded")]
    assert messages and all("SHA-256 recorded" in m and "verified" not in m.replace("to verify", "") for m in messages), messages
