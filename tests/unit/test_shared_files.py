"""One file, several models: a repo's mmproj serves every quant (issue 11.2)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import visible_files
from tests.helpers.hubsim import HubSim, gguf_bytes

REPO = "acme/Vis-GGUF"
MMPROJ = f"{REPO}/mmproj-Vis-F16.gguf"


@pytest.fixture
async def hub(monkeypatch):
    async with HubSim() as sim:
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        sim.add_repo(
            REPO,
            {
                "Vis-Q4_K_M.gguf": gguf_bytes(tensor_bytes=1 << 18, seed=1),
                "Vis-Q8_0.gguf": gguf_bytes(tensor_bytes=1 << 18, seed=2),
                "mmproj-Vis-F16.gguf": gguf_bytes(tensor_bytes=1 << 17, arch="clip", seed=3),
            },
        )
        yield sim


def _models(listing) -> dict:
    return {m["name"]: m for m in listing["models"]}


async def test_second_quant_references_the_shared_mmproj(hub, cli, store):
    first = await cli("pull", f"{REPO}:Q4_K_M")
    assert first.code == 0, first.err
    inode = os.stat(store / MMPROJ).st_ino
    second = await cli("pull", f"{REPO}:Q8_0")
    assert second.code == 0, second.err
    assert "not managed" not in second.err
    assert hub.downloads_started("mmproj-Vis-F16.gguf") == 1  # downloaded once
    assert os.stat(store / MMPROJ).st_ino == inode  # not replaced, not copied
    assert os.stat(store / MMPROJ).st_nlink == 1
    models = _models(json.loads((await cli("ls", "--json")).out))
    assert set(models) == {f"{REPO}:Q4_K_M", f"{REPO}:Q8_0"}
    for model in models.values():
        assert MMPROJ in [f["path"] for f in model["files"]]
        assert model["state"] == "verified"
    assert sorted(visible_files(store)) == sorted(
        [MMPROJ, f"{REPO}/Vis-Q4_K_M.gguf", f"{REPO}/Vis-Q8_0.gguf"]
    )
    # Each model's main file is its own quant, never the shared mmproj.
    path = await cli("path", f"{REPO}:Q8_0")
    assert path.out.strip().endswith("Vis-Q8_0.gguf")

    info = await cli("info", f"{REPO}:Q8_0", "--json")
    assert json.loads(info.out)["shared"] == {MMPROJ: [f"{REPO}:Q4_K_M"]}
    text = await cli("info", f"{REPO}:Q8_0")
    assert f"also a file of {REPO}:Q4_K_M" in text.out

    # rm of one model keeps the file the other still lists.
    removed = await cli("rm", f"{REPO}:Q4_K_M", "--yes")
    assert removed.code == 0, removed.err
    assert (store / MMPROJ).exists() and not (store / f"{REPO}/Vis-Q4_K_M.gguf").exists()
    assert (await cli("verify", f"{REPO}:Q8_0")).code == 0
    removed = await cli("rm", f"{REPO}:Q8_0", "--yes")
    assert removed.code == 0 and visible_files(store) == []


async def test_single_file_ref_then_quant_ref(hub, cli, store):
    single = await cli("pull", f"{REPO}/Vis-Q4_K_M.gguf")
    assert single.code == 0, single.err
    quant = await cli("pull", f"{REPO}:Q4_K_M")
    assert quant.code == 0, quant.err
    assert hub.downloads_started("Vis-Q4_K_M.gguf") == 1
    models = _models(json.loads((await cli("ls", "--json")).out))
    assert len(models) == 2
    assert all(m["state"] == "verified" for m in models.values())


async def test_quant_then_mmproj_alone_in_either_order(hub, cli, store):
    only = await cli("pull", f"{REPO}/mmproj-Vis-F16.gguf")
    assert only.code == 0, only.err
    both = await cli("pull", f"{REPO}:Q8_0")
    assert both.code == 0, both.err
    assert hub.downloads_started("mmproj-Vis-F16.gguf") == 1


async def test_other_content_at_a_managed_path_is_refused(hub, cli, store):
    first = await cli("pull", f"{REPO}:Q4_K_M")
    assert first.code == 0, first.err
    # The Hub now publishes other bytes under the same path: a different file, same place.
    hub.add_file(REPO, "mmproj-Vis-F16.gguf", gguf_bytes(tensor_bytes=1 << 17, arch="clip", seed=9))
    second = await cli("pull", f"{REPO}:Q8_0")
    assert second.code == 1
    assert f"as a file of {REPO}:Q4_K_M with other content" in second.err
    assert (await cli("verify", f"{REPO}:Q4_K_M")).code == 0  # the first model is untouched
