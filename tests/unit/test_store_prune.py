"""`prune`: least recently used first by --max-size, --unused-for, abandoned --partials."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from gguf_tui.store.layout import StoreLayout
from gguf_tui.units import format_size
from tests.conftest import visible_files
from tests.helpers.ggufgen import add_managed_model, make_gguf

DAY = 86400


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory):
    return make_gguf(tmp_path_factory.mktemp("src") / "m.gguf", tensor_bytes=100_000)


@pytest.fixture
def three_models(store, model_file):
    """old (used 10 days ago), mid (5 days), new (1 day): each about 100 kB."""
    now = time.time()
    for name, days in (("new", 1), ("old", 10), ("mid", 5)):
        add_managed_model(store, name, {f"{name}.gguf": model_file},
                          added_at=now - 20 * DAY, last_used_at=now - days * DAY)
    return model_file.stat().st_size


async def test_max_size_dry_run_then_for_real_removes_lru_first(cli, store, three_models):
    size = three_models
    limit = str(int(size * 1.5))  # room for one model only
    dry = await cli("prune", "--max-size", limit, "--dry-run")
    assert dry.code == 0, dry.err
    lines = [line for line in dry.out.splitlines() if line.startswith("would delete")]
    assert [line.split()[2].rstrip(":") for line in lines] == ["old", "mid"]
    assert "least recently used" in lines[0]
    assert dry.out.strip().endswith(f"would free {format_size(2 * size)}")
    assert visible_files(store) == ["mid.gguf", "new.gguf", "old.gguf"]

    as_json = json.loads((await cli("prune", "--max-size", limit, "--dry-run", "--json")).out)
    assert [m["name"] for m in as_json["models"]] == ["old", "mid"]
    assert as_json["freed"] == 2 * size and as_json["fits"]

    real = await cli("prune", "--max-size", limit, "--yes")
    assert real.code == 0, real.err
    assert visible_files(store) == ["new.gguf"]
    names = [m["name"] for m in json.loads((await cli("ls", "--json")).out)["models"]]
    assert names == ["new"]


async def test_unused_for_and_confirmation(cli, store, three_models):
    refused = await cli("prune", "--unused-for", "7d")
    assert refused.code == 2 and "pass --yes" in refused.err
    result = await cli("prune", "--unused-for", "7d", "--yes")
    assert result.code == 0, result.err
    assert visible_files(store) == ["mid.gguf", "new.gguf"]
    nothing = await cli("prune", "--unused-for", "30d", "--yes")
    assert nothing.code == 0 and "nothing to prune" in nothing.out


async def test_prune_needs_a_policy_and_valid_values(cli, store):
    store.mkdir()  # a named store that does not exist is itself a usage error
    assert (await cli("prune")).code == 2
    bad = await cli("prune", "--max-size", "lots")
    assert bad.code == 2 and "not a size" in bad.err
    bad = await cli("prune", "--unused-for", "forever")
    assert bad.code == 2 and "not a duration" in bad.err


async def test_partials_removes_abandoned_ones_and_their_state_only(cli, store, model_file):
    add_managed_model(store, "keep", {"keep.gguf": model_file})
    layout = StoreLayout(store)
    abandoned, live = "a" * 32, "b" * 32
    for key in (abandoned, live):
        layout.partial_path(key).write_bytes(b"\0" * 200_000)
        layout.state_path(key).write_text(json.dumps({"format": 1, "dest": f"{key[0]}.gguf"}))
    jobs = layout.hidden / "jobs"
    jobs.mkdir()
    (jobs / "record.json").write_text("{}")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from gguf_tui.store.locks import DownloadLock; "
         f"DownloadLock(Path({str(layout.lock_path(live))!r}), what='b.gguf').acquire(); "
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        dry = await cli("prune", "--partials", "--dry-run")
        assert "would delete partial download a.gguf" in dry.out
        assert "b.gguf" not in dry.out
        assert layout.partial_path(abandoned).exists()

        result = await cli("prune", "--partials", "--yes")
        assert result.code == 0, result.err
        assert not layout.partial_path(abandoned).exists()
        assert not layout.state_path(abandoned).exists()
        assert layout.partial_path(live).exists() and layout.state_path(live).exists()
        assert visible_files(store) == ["keep.gguf"]
        assert (jobs / "record.json").exists()
        assert not layout.lock_path(abandoned).exists()  # prune's own lock is released
    finally:
        holder.stdin.close()
        holder.wait(10)
    # Its owner is gone: now the partial is abandoned too.
    again = await cli("prune", "--partials", "--yes")
    assert again.code == 0, again.err
    assert not layout.partial_path(live).exists()
    assert json.loads((await cli("ls", "--json")).out)["partials_size"] == 0


async def test_live_owner_with_an_old_heartbeat_keeps_its_partial(cli, store, model_file):
    """The engine may not beat for a while; a download whose process still exists keeps it."""
    layout = StoreLayout(store)
    layout.ensure()
    key = "e" * 32
    layout.partial_path(key).write_bytes(b"\0" * 1000)
    add_managed_model(store, "m", {"m.gguf": model_file})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        old = time.time() - 3600
        layout.lock_path(key).write_text(json.dumps({
            "pid": sleeper.pid, "host": socket.gethostname(), "heartbeat": old,
            "started": old, "what": "m.gguf",
        }))
        result = await cli("prune", "--partials", "--yes")
        assert result.code == 0 and "nothing to prune" in result.out
        assert layout.partial_path(key).exists()
        refused = await cli("rm", "m", "--yes")
        assert refused.code == 1 and "a download in progress is writing it" in refused.err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (await cli("prune", "--partials", "--yes")).code == 0
    assert not layout.partial_path(key).exists()
