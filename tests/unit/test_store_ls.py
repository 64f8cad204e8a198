"""`ls`, `info`, `path` and model lookup over real pulls and files changed by hand (DESIGN.md 4)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.lookup import AmbiguousModel, ModelNotFound, find_model
from gguf_tui.store.scan import scan_store
from tests.helpers.ggufgen import add_managed_model, make_gguf, make_mmproj_gguf


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    return {
        "alpha": make_gguf(folder / "alpha.gguf", tensor_bytes=96 << 10, name="alpha", seed=1),
        "beta": make_gguf(folder / "beta-Q8_0.gguf", tensor_bytes=64 << 10, name="beta", seed=2),
        "hand": make_gguf(
            folder / "hand-Q4_K_M.gguf", tensor_bytes=32 << 10, arch="qwen3", seed=3
        ),
        "mmproj": make_mmproj_gguf(folder / "mmproj-F16.gguf"),
    }


async def _ls(cli) -> dict:
    result = await cli("ls", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _by_name(listing: dict) -> dict[str, dict]:
    return {model["name"]: model for model in listing["models"]}


async def test_ls_after_pulls_hand_copy_and_hand_delete(server, cli, store, sources):
    url_a = server.add("/alpha.gguf", sources["alpha"])
    url_b = server.add("/beta-Q8_0.gguf", sources["beta"])
    pulled = await cli("pull", url_a, url_b)
    assert pulled.code == 0, pulled.err

    models = _by_name(await _ls(cli))
    assert set(models) == {"alpha", "beta-Q8_0"}
    alpha = models["alpha"]
    assert alpha["managed"] and alpha["state"] == "recorded"  # no published SHA-256 to check
    assert alpha["size"] == sources["alpha"].stat().st_size
    assert alpha["architecture"] == "llama" and alpha["quant"] == "F32"
    assert alpha["files"][0]["sha256"] == server.sha256("/alpha.gguf")
    assert alpha["verified_at"] and alpha["added_at"]

    # Copied in by hand: shown as an unmanaged model with facts from its header.
    (store / "owner" / "repo").mkdir(parents=True)
    shutil.copy(sources["hand"], store / "owner" / "repo" / "hand-Q4_K_M.gguf")
    listing = await _ls(cli)
    hand = _by_name(listing)["owner/repo/hand-Q4_K_M"]
    assert not hand["managed"] and hand["state"] == "unmanaged"
    assert hand["architecture"] == "qwen3"
    expected_total = sum(sources[name].stat().st_size for name in ("alpha", "beta", "hand"))
    assert listing["total_size"] == expected_total
    assert listing["free_space"] > 0 and listing["partials_size"] == 0

    # Deleted by hand: gone from the list at once.
    (store / "alpha.gguf").unlink()
    listing = await _ls(cli)
    assert set(_by_name(listing)) == {"beta-Q8_0", "owner/repo/hand-Q4_K_M"}
    assert listing["stale_manifests"] == ["alpha"]

    text = await cli("ls")
    assert text.code == 0
    assert "beta-Q8_0" in text.out and "unmanaged" in text.out and "recorded" in text.out
    assert "2 models" in text.out and "free" in text.out


async def test_corrupt_manifest_is_reported_and_model_shown_unmanaged(server, cli, store, sources):
    url = server.add("/beta-Q8_0.gguf", sources["beta"])
    assert (await cli("pull", url)).code == 0
    [manifest] = (store / ".gguf-tui" / "manifests").glob("*.json")
    manifest.write_text('{"format": 1, "name": "beta-Q8_0", "files": [{"path": 3')

    result = await cli("ls", "--json")
    assert result.code == 0
    assert "warning" in result.err and manifest.name in result.err
    listing = json.loads(result.out)
    [problem] = listing["problems"]
    assert problem["manifest"] == str(manifest)
    [model] = listing["models"]
    assert model["name"] == "beta-Q8_0" and not model["managed"]

    # A manifest pointing outside the store is just as unusable, never followed.
    manifest.write_text(json.dumps({"format": 1, "name": "x", "files": [
        {"path": "../outside.gguf", "size": 1, "sha256": "0" * 64}]}))
    listing = await _ls(cli)
    assert "leaves its folder" in listing["problems"][0]["error"]
    assert (await cli("info", "beta")).code == 0


async def test_partials_count_in_the_totals(cli, store, sources):
    layout = StoreLayout(store)
    layout.ensure()
    layout.partial_path("a" * 32).write_bytes(b"\1" * (1 << 20))
    layout.state_path("a" * 32).write_text(json.dumps({"format": 1, "dest": "x.gguf"}))
    listing = await _ls(cli)
    assert listing["partials"] == 1
    assert listing["partials_size"] >= 1 << 20
    assert listing["models"] == []


async def test_info_and_path_resolve_names_and_record_use(cli, store, sources):
    add_managed_model(
        store,
        "owner/Vision-GGUF:F32",
        {"owner/Vision-GGUF/vision-F32.gguf": sources["alpha"],
         "owner/Vision-GGUF/mmproj-F16.gguf": sources["mmproj"]},
        roles={"owner/Vision-GGUF/mmproj-F16.gguf": "mmproj"},
    )
    add_managed_model(store, "owner/Vision-Other:Q8_0", {"other-Q8_0.gguf": sources["beta"]})

    info = await cli("info", "Vision-GGUF", "--json")  # prefix without the owner
    assert info.code == 0, info.err
    data = json.loads(info.out)
    assert data["name"] == "owner/Vision-GGUF:F32"
    headers = data["headers"]
    assert headers["owner/Vision-GGUF/mmproj-F16.gguf"]["projector_type"] == "mlp"
    assert headers["owner/Vision-GGUF/vision-F32.gguf"]["architecture"] == "llama"

    text = await cli("info", "owner/Vision-GGUF:F32")
    assert "llama" in text.out and "mmproj" in text.out and "verified" in text.out

    path = await cli("path", "owner/Vision-GGUF:F32")
    assert path.code == 0 and path.out.strip() == str(store / "owner/Vision-GGUF/vision-F32.gguf")
    mmproj = await cli("path", "--mmproj", str(store / "owner/Vision-GGUF/vision-F32.gguf"))
    assert mmproj.out.strip() == str(store / "owner/Vision-GGUF/mmproj-F16.gguf")
    models = _by_name(await _ls(cli))
    assert time.time() - models["owner/Vision-GGUF:F32"]["last_used_at"] < 60
    assert models["owner/Vision-Other:Q8_0"]["last_used_at"] is None

    ambiguous = await cli("info", "Vision")
    assert ambiguous.code == 1 and "matches 2 models" in ambiguous.err
    missing = await cli("path", "nothing-like-it")
    assert missing.code == 1 and "no model 'nothing-like-it'" in missing.err
    assert "Traceback" not in ambiguous.err + missing.err


def test_lookup_by_file_name_and_errors(store, sources):
    add_managed_model(store, "m1", {"dir/one-Q8_0.gguf": sources["beta"]})
    add_managed_model(store, "m2", {"two.gguf": sources["alpha"]})
    snapshot = scan_store(store)
    assert find_model(snapshot, "one-Q8_0.gguf").name == "m1"
    assert find_model(snapshot, "dir/one-Q8_0.gguf").name == "m1"
    assert find_model(snapshot, "M2").name == "m2"
    with pytest.raises(AmbiguousModel):
        find_model(snapshot, "m")
    with pytest.raises(ModelNotFound):
        find_model(snapshot, "zzz")


def test_last_used_takes_a_later_access_time(store, sources):
    add_managed_model(store, "m", {"m.gguf": sources["alpha"]}, last_used_at=1000.0)
    stat = (store / "m.gguf").stat()
    os.utime(store / "m.gguf", (stat.st_mtime + 3600, stat.st_mtime))
    [model] = scan_store(store).models
    assert model.last_used_at == pytest.approx(stat.st_mtime + 3600)
    # Our own header reads do not count as a use.
    shutil.copy(sources["hand"], store / "unmanaged.gguf")
    scan_store(store)
    unmanaged = [m for m in scan_store(store).models if not m.managed]
    assert unmanaged[0].last_used_at is None


async def test_parts_placed_by_an_unfinished_download_show_as_downloading(
    server, config, cli, store, sources
):
    from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
    from tests.helpers.fileserver import Behaviour

    slow = Behaviour(rate=100_000)
    first = FileRequest(
        url=server.add("/p1.gguf", sources["alpha"]), dest="o/r/x-00001-of-00002.gguf", role="part"
    )
    second = FileRequest(
        url=server.add("/p2.gguf", sources["beta"], slow),
        dest="o/r/x-00002-of-00002.gguf",
        role="part",
    )
    async with Engine(config) as engine:
        job_id = await engine.enqueue(JobSpec("o/r:X", [first, second]))
        for _ in range(200):
            if (store / first.dest).exists():
                break
            await asyncio.sleep(0.02)
        listing = await _ls(cli)
        [model] = listing["models"]
        assert model["name"] == "o/r:X" and model["state"] == "downloading"
        refused = await cli("rm", "o/r:X", "--yes")
        # Refused either way: the model is still downloading, or (just after the first part is
        # renamed into place, before the engine lets go of it) its lock says it is being written.
        assert refused.code == 1 and (
            "downloading" in refused.err or "download in progress" in refused.err
        ), refused.err
        assert (store / first.dest).exists()
        server.behaviours["/p2.gguf"].rate = None
        job = await engine.wait(job_id)
        assert job.state == JobState.COMPLETED
    [model] = (await _ls(cli))["models"]
    assert model["managed"] and model["state"] == "recorded" and len(model["files"]) == 2
