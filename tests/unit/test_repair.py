"""A model that failed verification is downloaded again: by pull, and by verify --repair,
only its bad files (issue 11.4)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sha256_of
from tests.helpers.hubsim import HubSim, gguf_bytes

REPO = "acme/Fix-GGUF"
MODEL = f"{REPO}/Fix-Q4_K_M.gguf"
MMPROJ = f"{REPO}/mmproj-Fix-F16.gguf"


@pytest.fixture
async def hub(monkeypatch):
    async with HubSim() as sim:
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        sim.add_repo(
            REPO,
            {
                "Fix-Q4_K_M.gguf": gguf_bytes(tensor_bytes=1 << 18, seed=1),
                "Fix-Q8_0.gguf": gguf_bytes(tensor_bytes=1 << 18, seed=2),
                "mmproj-Fix-F16.gguf": gguf_bytes(tensor_bytes=1 << 17, arch="clip", seed=3),
            },
        )
        yield sim


def _corrupt(path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # same size, other bytes: only a re-hash notices
    path.write_bytes(data)


async def _pulled_then_corrupted(hub, cli, store, relative: str) -> None:
    result = await cli("pull", f"{REPO}:Q4_K_M")
    assert result.code == 0, result.err
    _corrupt(store / relative)
    verify = await cli("verify", f"{REPO}:Q4_K_M")
    assert verify.code == 1 and "SHA-256 mismatch" in verify.err


async def test_pull_downloads_only_the_bad_file_again(hub, cli, store):
    await _pulled_then_corrupted(hub, cli, store, MODEL)
    again = await cli("pull", f"{REPO}:Q4_K_M")
    assert again.code == 0, again.err
    assert "already in the store" not in again.out
    assert hub.downloads_started("Fix-Q4_K_M.gguf") == 2 and hub.downloads_started("mmproj-Fix-F16.gguf") == 1
    assert sha256_of(store / MODEL) == hub.repos[REPO.lower()].files["Fix-Q4_K_M.gguf"].sha256
    assert (await cli("verify", f"{REPO}:Q4_K_M")).code == 0
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "verified"
    assert all(f["verify_failed_at"] is None for f in model["files"])


async def test_verify_repair_downloads_the_bad_file_from_the_recorded_source(hub, cli, store):
    await _pulled_then_corrupted(hub, cli, store, MMPROJ)
    repair = await cli("verify", "--repair", f"{REPO}:Q4_K_M")
    assert repair.code == 0, repair.err
    assert "repaired" in repair.out
    assert hub.downloads_started("mmproj-Fix-F16.gguf") == 2 and hub.downloads_started("Fix-Q4_K_M.gguf") == 1
    assert (await cli("verify", f"{REPO}:Q4_K_M")).code == 0
    nothing_to_do = await cli("verify", "--repair", "--json")
    assert nothing_to_do.code == 0
    assert json.loads(nothing_to_do.out)["repaired"] == []


async def test_a_shared_corrupt_file_is_downloaded_again_for_either_model(hub, cli, store):
    assert (await cli("pull", f"{REPO}:Q4_K_M")).code == 0
    assert (await cli("pull", f"{REPO}:Q8_0")).code == 0
    _corrupt(store / MMPROJ)
    assert (await cli("verify", f"{REPO}:Q8_0")).code == 1
    again = await cli("pull", f"{REPO}:Q8_0")
    assert again.code == 0, again.err
    assert hub.downloads_started("mmproj-Fix-F16.gguf") == 2
    assert (await cli("verify")).code == 0  # both models: the one file is sound again


async def test_plain_url_model_is_repaired(server, cli, store, gguf_bytes):
    url = server.add("/u.gguf", gguf_bytes)
    assert (await cli("pull", url, "--sha256", server.sha256("/u.gguf"))).code == 0
    _corrupt(store / "u.gguf")
    repair = await cli("verify", "--repair", "u")
    assert repair.code == 0, repair.err
    assert sha256_of(store / "u.gguf") == server.sha256("/u.gguf")
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "verified"  # still against the user-given hash


async def test_imported_model_cannot_be_repaired(cli, store, tmp_path, gguf_bytes):
    source = tmp_path / "Own-Q8_0.gguf"
    source.write_bytes(gguf_bytes)
    assert (await cli("import", "--copy", str(source))).code == 0
    _corrupt(store / "Own-Q8_0.gguf")
    repair = await cli("verify", "--repair", "Own")
    assert repair.code == 1
    assert "not repaired" in repair.err and "nowhere to download it from" in repair.err
