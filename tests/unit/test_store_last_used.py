"""Only real use counts as "last used": `path` (it hands a model to a runner) and reading the file;
`verify` and `info` look at a model without using it, so LRU pruning still finds idle models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gguf_tui.store.layout import StoreLayout
from tests.helpers.ggufgen import add_managed_model, make_gguf
from tests.unit.test_store_confinement import run_cli

LONG_AGO = 1_000_000.0


@pytest.fixture
def idle_model(store: Path, tmp_path: Path) -> Path:
    source = make_gguf(tmp_path / "src" / "Idle-Q4_K_M.gguf", tensor_bytes=16 << 10)
    return add_managed_model(store, "idle", {"Idle-Q4_K_M.gguf": source},
                             added_at=LONG_AGO, last_used_at=None)


def last_used(manifest: Path) -> float | None:
    return json.loads(manifest.read_text())["last_used_at"]


async def test_verify_and_info_do_not_count_as_use(config_file, idle_model):
    assert (await run_cli(config_file, "verify")).code == 0
    assert (await run_cli(config_file, "info", "idle")).code == 0
    assert (await run_cli(config_file, "info", "idle", "--json")).code == 0
    assert last_used(idle_model) is None

    listing = json.loads((await run_cli(config_file, "ls", "--json")).out)
    assert listing["models"][0]["last_used_at"] is None
    plan = json.loads(
        (await run_cli(config_file, "prune", "--unused-for", "30d", "--dry-run", "--json")).out
    )
    assert [item["name"] for item in plan["models"]] == ["idle"]


async def test_path_counts_as_use(config_file, store, idle_model):
    result = await run_cli(config_file, "path", "idle")
    assert result.code == 0, result.err
    assert result.out.strip() == str(store / "Idle-Q4_K_M.gguf")
    assert last_used(idle_model) is not None
    plan = json.loads(
        (await run_cli(config_file, "prune", "--unused-for", "30d", "--dry-run", "--json")).out
    )
    assert plan["models"] == []


async def test_a_verify_after_a_use_keeps_the_time_of_that_use(config_file, store, idle_model):
    assert (await run_cli(config_file, "path", "idle")).code == 0
    used = last_used(idle_model)
    assert (await run_cli(config_file, "verify", "idle")).code == 0
    assert last_used(idle_model) == used
    assert StoreLayout(store).manifest_path("idle") == idle_model
