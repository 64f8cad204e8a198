"""A preallocated partial shows the bytes downloaded and the space it holds apart: a 15 MB start
of a 134 MB file is not "134 MB" downloaded, though deleting it does free the 134 MB it holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gguf_tui.engine.resume import ResumeState
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.usage import list_partials
from tests.unit.test_store_confinement import run_cli

TOTAL = 8 << 20
DONE = 1 << 20


@pytest.fixture
def preallocated_partial(store: Path) -> Path:
    """What the engine leaves after an interrupted download: the whole size reserved up front."""
    layout = StoreLayout(store)
    layout.ensure()
    key = "c" * 32
    fd = os.open(layout.partial_path(key), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, TOTAL)
        except OSError as exc:
            pytest.skip(f"no preallocation on this filesystem: {exc}")
        os.pwrite(fd, b"\x01" * DONE, 0)
    finally:
        os.close(fd)
    ResumeState(
        resume_key="http://127.0.0.1:9/Big-Q4_K_M.gguf", dest="Big-Q4_K_M.gguf",
        total_size=TOTAL, ranges=[[0, DONE]],
    ).save(layout.state_path(key))
    old = 1_000_000.0
    for path in (layout.partial_path(key), layout.state_path(key)):
        os.utime(path, (old, old))
    return layout.partial_path(key)


def test_the_store_objects_carry_both_numbers(store, preallocated_partial):
    [partial] = list_partials(StoreLayout(store))
    assert partial.downloaded_bytes == DONE
    assert partial.allocated_bytes >= TOTAL
    assert partial.reserved_bytes == partial.allocated_bytes - DONE
    shown = partial.to_json()
    assert shown["downloaded_bytes"] == DONE and shown["allocated_bytes"] >= TOTAL


async def test_ls_shows_downloaded_and_on_disk_apart(config_file, preallocated_partial):
    text = await run_cli(config_file, "ls")
    assert "1 partial download: 1.05 MB downloaded, 8.39 MB on disk" in text.out
    listing = json.loads((await run_cli(config_file, "ls", "--json")).out)
    assert listing["partials_downloaded_bytes"] == DONE
    assert listing["partials_allocated_bytes"] >= TOTAL


async def test_prune_says_what_was_downloaded_and_frees_what_was_held(
    config_file, preallocated_partial
):
    dry = await run_cli(config_file, "prune", "--partials", "--dry-run")
    assert ("would delete partial download Big-Q4_K_M.gguf: 1.05 MB downloaded of 8.39 MB, "
            "8.39 MB on disk") in dry.out
    done = await run_cli(config_file, "prune", "--partials", "--yes", "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["freed"] >= TOTAL  # the blocks really released, preallocation included
    [removed] = report["partials_removed"]
    assert removed["downloaded_bytes"] == DONE
    assert not preallocated_partial.exists()


async def test_status_shows_the_space_held_too(config_file, preallocated_partial):
    result = await run_cli(config_file, "status")
    assert "1.05 MB of 8.39 MB" in result.out and "8.39 MB on disk" in result.out
