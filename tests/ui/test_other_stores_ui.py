"""Issue 14 in the dashboard: other tools' models in the catalog (source column, filter key),
the status bar's second figure, their detail, deleting one the way its tool would, the prune
screen's reclaimable duplicate space and `o` toggle, and a scan that never blocks the loop.

Every store is built on disk in a temp folder as its tool writes it (tests/helpers/otherstores.py)
and read by the real scanners; the config names each place, so nothing of the machine is read.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gguf_tui.config import load_config
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.screens.confirm import ConfirmScreen
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.tui.storeport import StorePort
from gguf_tui.units import format_size
from tests.helpers.ggufgen import make_gguf, make_mmproj_gguf
from tests.helpers.otherstores import build_box, other_stores_config, sha256_bytes, write_lmstudio_model
from tests.ui.conftest import LOCAL_ENGINE, detail_text, wait_for


@pytest.fixture
def box(tmp_path: Path):
    """Our store with one model, and the other tools' stores of `build_box`."""
    src = tmp_path / "src"
    data = {
        "gguf": make_gguf(src / "a.gguf", tensor_bytes=64 << 10, seed=1).read_bytes(),
        "other": make_gguf(src / "b.gguf", tensor_bytes=128 << 10, seed=2, name="other").read_bytes(),
        "projector": make_mmproj_gguf(src / "p.gguf").read_bytes(),
    }
    places = build_box(tmp_path / "home", data["gguf"], data["other"], data["projector"])
    store = tmp_path / "store"
    make_gguf(store / "mine-Q4_0.gguf", tensor_bytes=32 << 10, seed=3)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(other_stores_config(store, places) + LOCAL_ENGINE)
    return {"config_file": config_file, "places": places, "store": store, **data}


def rows(app) -> list:
    return list(app.query_one("#catalog").catalog_rows)


def other_rows(app) -> dict[str, object]:
    return {row.other.name: row for row in rows(app) if row.kind == "other"}


async def started(app, pilot, show_all: bool = True) -> None:
    """Both scans shown; with `show_all`, `s` once: from ours (the default) to every store."""
    await wait_for(pilot, lambda: app.snapshot is not None and app.sources.stores is not None,
                   what="both scans")
    await pilot.pause()
    if show_all:
        await pilot.press("s")
        await pilot.pause()
        assert app.sources.current == "all"


async def test_catalog_lists_every_tool_with_a_source_column(box):
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        listed = other_rows(app)
        assert {name: row.source for name, row in listed.items()} == {
            "acme/Tiny-GGUF/Tiny-Q4_0.gguf": "hf",
            "acme_Other-GGUF_Other-Q8_0.gguf": "llama.cpp",
            "lmstudio-community/Other-GGUF/Other-Q8_0.gguf": "lmstudio",
            "tiny:latest": "ollama",
        }
        ours = [row for row in rows(app) if row.kind == "local"]
        assert [(row.model.name, row.source) for row in ours] == [("mine-Q4_0", "ours")]
        # Ours come first, the others under their own heading; each line shows its source.
        keys = [row.key for row in rows(app)]
        assert keys.index("h:local") < keys.index("unmanaged:mine-Q4_0") < keys.index("h:others")
        table = app.query_one("#catalog")
        line = table.get_row_at(keys.index("h:others") + 1)[0].plain
        assert " hf " in line and "dup" in line  # the HF blob's bytes are Ollama's blob too
        # The status bar: our store's size, then what the other tools hold.
        status = app.query_one("#status").render().plain
        ours_size = format_size(app.snapshot.total_size)
        theirs = format_size(app.sources.stores.other_stores_bytes)
        assert f"store {ours_size} · other tools {theirs} · free" in status
        await pilot.resize_terminal(80, 24)  # short labels keep every number on the line
        await pilot.pause()
        status = app.query_one("#status").render().plain
        assert f"store {ours_size} · others {theirs} · free" in status and status.endswith("0 active")
        assert app.sources.stores.other_stores_bytes == (
            2 * len(box["gguf"]) + 2 * len(box["other"]) + len(box["projector"])
        )


async def test_source_key_cycles_ours_all_then_each_tool(box):
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test() as pilot:
        await started(app, pilot, show_all=False)
        assert app.sources.current == "gguf-tui"  # the default: ours, and a line about the rest
        note = next(row for row in rows(app) if row.key == "note:others")
        assert "other tools: 4 models" in note.label.plain
        assert not other_rows(app)
        seen = []
        for _ in range(7):
            await pilot.press("s")
            await pilot.pause()
            sources = {row.source for row in rows(app) if row.kind in ("local", "other")}
            seen.append((app.sources.current, sorted(sources)))
        assert seen == [
            ("all", ["hf", "llama.cpp", "lmstudio", "ollama", "ours"]),
            ("hf", ["hf"]),
            ("llama.cpp", ["llama.cpp"]),
            ("lmstudio", ["lmstudio"]),
            ("ollama", ["ollama"]),
            ("gguf-tui", ["ours"]),
            ("all", ["hf", "llama.cpp", "lmstudio", "ollama", "ours"]),
        ]
        await pilot.press("s", "s", "s", "s", "s")  # ours only again
        await pilot.pause()
        assert "ours only" in str(app.query_one("#catalog").border_title)


async def test_the_source_key_follows_ui_keymap(box):
    box["config_file"].write_text(box["config_file"].read_text() + "ui:\n  keymap:\n    source_filter: F\n")
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test() as pilot:
        await started(app, pilot, show_all=False)
        await pilot.press("s")
        await pilot.pause()
        assert app.sources.current == "gguf-tui"
        await pilot.press("F")
        await pilot.pause()
        assert app.sources.current == "all"
        assert "F" in app.key_shown("source_filter")


async def test_detail_of_another_tools_model(box):
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        app.query_one("#catalog").select_key(other_rows(app)["acme/Tiny-GGUF/Tiny-Q4_0.gguf"].key)
        await pilot.pause()
        text = detail_text(app)
        assert "hf · the Hugging Face cache" in text
        assert f"{sha256_bytes(box['gguf'])} (from the layout)" in text
        assert "[ollama] tiny:latest" in text  # the other copy of these bytes, with its tool
        assert f"linking frees {format_size(len(box['gguf']))}" in text
        assert "arch llama" in text
        app.query_one("#catalog").select_key(other_rows(app)["tiny:latest"].key)
        await pilot.pause()
        text = detail_text(app)
        assert "(mmproj)" in text and "manifest" in text and "Ollama's store" in text
        app.query_one("#catalog").select_key(other_rows(app)["acme_Other-GGUF_Other-Q8_0.gguf"].key)
        await pilot.pause()
        assert "not in the layout (gguf-tui dedupe hashes it)" in detail_text(app)


async def test_delete_asks_naming_the_tool_and_removes_it_as_that_tool_would(box):
    app = GgufApp(load_config(box["config_file"]))
    ollama = box["places"]["ollama"]
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    hf_blob = next((box["places"]["hf_cache"] / "models--acme--Tiny-GGUF" / "blobs").iterdir())
    async with app.run_test() as pilot:
        await started(app, pilot)
        app.query_one("#catalog").select_key(other_rows(app)["tiny:latest"].key)
        await pilot.pause()
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "from Ollama's store?" in app.screen.title_text
        assert "what `ollama rm` does" in app.screen.body.plain
        await pilot.press("n")
        await pilot.pause(0.2)
        assert manifest.exists()
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: "tiny:latest" not in other_rows(app), what="gone from the catalog")
        assert not manifest.exists()
        assert not any((ollama / "blobs").iterdir())  # no other manifest used its blobs
        assert hf_blob.read_bytes() == box["gguf"]  # the same bytes in the HF cache: untouched
        assert any("deleted [ollama] tiny:latest" in n.message for n in app._notifications)


async def test_verify_and_download_on_another_tools_model_explain_instead(box):
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test() as pilot:
        await started(app, pilot)
        app.query_one("#catalog").select_key(other_rows(app)["acme/Tiny-GGUF/Tiny-Q4_0.gguf"].key)
        await pilot.pause()
        await pilot.press("V", "d")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("read-only here" in m for m in messages)
        assert any("import --from hf" in m for m in messages)


async def test_prune_screen_shows_reclaimable_space_and_other_tools_on_o(box):
    app = GgufApp(load_config(box["config_file"]))
    flat = box["places"]["llama_cpp"] / "acme_Other-GGUF_Other-Q8_0.gguf"
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune screen")
        screen = app.screen
        summary = str(screen.query_one("#prune-summary").render())
        assert f"{format_size(len(box['gguf']))} in duplicates: gguf-tui dedupe links them" in summary
        # LM Studio's and llama.cpp's copies share a size but no layout names their hash.
        assert "2 same-size files not compared" in summary
        table = screen.query_one("#prune-models")
        assert table.row_count == 1  # ours only, until asked
        await pilot.press("o")
        await pilot.pause()
        keys = [row.key.value for row in table.ordered_rows]
        tools = [str(table.get_row(key)[1]) for key in keys]
        assert sorted(tools) == ["hf", "llama.cpp", "lmstudio", "ollama", "ours"]
        table.move_cursor(row=tools.index("llama.cpp"))
        await pilot.press("space", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "also from llama.cpp's cache?" in app.screen.title_text
        await pilot.press("y")
        await wait_for(pilot, lambda: not flat.exists(), what="deleted")
        await wait_for(pilot, lambda: "acme_Other-GGUF_Other-Q8_0.gguf" not in other_rows(app),
                       what="rescanned")
        assert (box["places"]["lmstudio"] / "lmstudio-community" / "Other-GGUF" / "Other-Q8_0.gguf").exists()


async def test_ctrl_r_reads_the_other_stores_again(box):
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test() as pilot:
        await started(app, pilot)
        write_lmstudio_model(box["places"]["lmstudio"], "newpub", "New-GGUF", {"New-Q4_0.gguf": box["gguf"]})
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "newpub/New-GGUF/New-Q4_0.gguf" in other_rows(app), what="new model")


class HeldStorePort(StorePort):
    """The real store port whose scan of the other stores waits until the test lets it go, so
    the test can look at the dashboard while that scan is still running in its thread."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.release = threading.Event()
        self.entered = threading.Event()

    def scan_others(self, ours, others=None):
        self.entered.set()
        self.release.wait(30)
        return super().scan_others(ours, others)


async def test_our_models_show_at_once_and_the_loop_runs_while_other_stores_are_read(box):
    config = load_config(box["config_file"])
    port = HeldStorePort(config)
    app = GgufApp(config, store=port)
    try:
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and port.entered.is_set(),
                           what="our scan, and the other stores' scan under way")
            assert [row.key for row in rows(app) if row.kind == "local"] == ["unmanaged:mine-Q4_0"]
            assert other_rows(app) == {}
            assert "other tools" not in app.query_one("#status").render().plain
            await pilot.press("down")  # keys are handled while the scan's thread waits
            await pilot.pause()
            assert app.query_one("#catalog").current.key == "unmanaged:mine-Q4_0"
            await pilot.press("s")  # not offered until other tools' models are found
            await pilot.pause()
            assert app.sources.current == "gguf-tui"
            app.action_source_filter()  # as the palette's entry does: says why, never waits
            await pilot.pause()
            assert any("still reading them" in n.message for n in app._notifications)
            port.release.set()
            await wait_for(pilot, lambda: app.sources.found, what="others found")
            await pilot.press("s")
            await wait_for(pilot, lambda: len(other_rows(app)) == 4, what="others added")
            assert app.query_one("#catalog").current.key == "unmanaged:mine-Q4_0"  # the cursor stayed
    finally:
        port.release.set()


async def test_a_change_in_our_store_finds_its_duplicates_in_the_other_stores(box):
    """Our store changes (an import by another process, seen by the watcher): the duplicates
    are found again against it, without ctrl+r."""
    import asyncio

    from tests.helpers.otherstores import run_cli

    source = box["config_file"].parent / "src" / "a.gguf"  # the HF cache's and Ollama's bytes
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        assert not any(row.kind == "local" and "dup" in row.info.plain for row in rows(app))
        result = await asyncio.to_thread(run_cli, box["config_file"], "import", str(source), "--copy",
                                         "--name", "adopted")
        assert result.returncode == 0, result.stderr
        await wait_for(pilot, lambda: any(row.key == "local:adopted" and "dup" in row.info.plain
                                          for row in rows(app)), what="our copy marked as a duplicate")
        app.query_one("#catalog").select_key("local:adopted")
        await pilot.pause()
        text = detail_text(app)
        assert "[hf] acme/Tiny-GGUF/Tiny-Q4_0.gguf" in text and "[ollama] tiny:latest" in text
        assert f"linking frees {format_size(2 * len(box['gguf']))}" in text


async def test_thousands_of_rows_fill_the_table_in_slices(tmp_path: Path):
    """600 LM Studio models: the table fills over several turns of the loop, every row ends up
    in it once, and a row past the first slice can be selected at once."""
    from gguf_tui.tui.catalog import FILL_SLICE

    tiny = make_gguf(tmp_path / "src" / "t.gguf", tensor_bytes=64).read_bytes()
    lmstudio = tmp_path / "lms"
    for index in range(600):
        write_lmstudio_model(lmstudio, f"pub{index // 100}", f"M{index:03d}-GGUF", {f"M{index:03d}-Q4_0.gguf": tiny})
    config_file = tmp_path / "config.yaml"
    config_file.write_text(other_stores_config(tmp_path / "store", {"lmstudio": lmstudio}) + LOCAL_ENGINE)
    app = GgufApp(load_config(config_file))
    async with app.run_test() as pilot:
        await started(app, pilot, show_all=False)
        table = app.query_one("#catalog")
        await pilot.press("s")
        assert FILL_SLICE < len(table.catalog_rows)
        last = table.catalog_rows[-1].key
        table.select_key(last)
        assert table.current.key == last
        await wait_for(pilot, lambda: table.row_count == len(table.catalog_rows), what="filled")
        keys = [row.key.value for row in table.ordered_rows]
        assert keys == [row.key for row in table.catalog_rows]
        assert sum(1 for row in table.catalog_rows if row.kind == "other") == 600


def test_the_collector_is_settled_with_a_full_pass_now_and_then():
    """Young passes and a freeze after each scan; a full pass (frozen garbage cycles freed)
    on the first call and once FULL_PASS_EVERY has gone by."""
    import gc

    from gguf_tui.tui import gcpolicy

    class Cycle:
        pass

    try:
        gcpolicy._last_full_pass = None
        assert gcpolicy.settle_collector(now=1000.0) is True
        cycle = Cycle()
        cycle.me = cycle  # a garbage cycle once dropped; frozen by the next settle
        gc.collect()  # it survives into the oldest generation while still referenced
        assert gcpolicy.settle_collector(now=1000.0 + gcpolicy.FULL_PASS_EVERY / 2) is False
        assert gc.get_freeze_count() > 0
        import weakref

        ref = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert ref() is not None  # frozen: no pass sees it
        assert gcpolicy.settle_collector(now=1000.0 + gcpolicy.FULL_PASS_EVERY) is True
        assert ref() is None  # the full pass freed it
    finally:
        gc.unfreeze()


async def test_a_broken_entry_is_listed_and_never_deleted(box):
    """A dangling snapshot link in the HF cache: listed as broken with the reason; D asks, and
    the store layer refuses (nothing is removed), which the notification says."""
    import os

    snapshot = box["places"]["hf_cache"] / "models--acme--Tiny-GGUF" / "snapshots" / ("a" * 40)
    os.symlink("../../blobs/" + "7" * 64, snapshot / "Gone-Q8_0.gguf")
    app = GgufApp(load_config(box["config_file"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        row = other_rows(app)["acme/Tiny-GGUF/Gone-Q8_0.gguf"]
        assert "broken" in row.info.plain
        app.query_one("#catalog").select_key(row.key)
        await pilot.pause()
        assert "broken: dangling symlink" in detail_text(app)
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: any("kept [hf]" in n.message for n in app._notifications),
                       what="refusal")
        assert os.path.islink(snapshot / "Gone-Q8_0.gguf")
        assert (snapshot / "Tiny-Q4_0.gguf").read_bytes() == box["gguf"]
