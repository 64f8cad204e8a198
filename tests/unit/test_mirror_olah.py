"""HF_ENDPOINT pointing at a real Olah mirror (PyPI `olah`) in front of the Hub imitation.

Olah serves the files itself (no redirect to a CDN) and keeps what it fetched: a quant with its
mmproj pulled through it twice, into two empty stores, reaches the imitation's CDN once. The
manifest (and `info`) records that the mirror served each file.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.hubsim import HubSim, gguf_bytes
from tests.helpers.mirrors import Olah

FILES = ("V-Q4_K_M.gguf", "mmproj-V-F16.gguf")


@pytest.fixture
async def hub():
    async with HubSim() as sim:
        sim.add_repo(
            "acme/Vision-GGUF",
            {
                "V-Q4_K_M.gguf": gguf_bytes(tensor_bytes=1 << 20, seed=11),
                "V-Q8_0.gguf": gguf_bytes(tensor_bytes=1 << 19, seed=12),
                "mmproj-V-F16.gguf": gguf_bytes(tensor_bytes=1 << 17, arch="clip", seed=13),
            },
        )
        yield sim


@pytest.fixture
async def olah(hub, monkeypatch):
    with Olah(f"{hub.api_host}:{hub.api_port}", f"{hub.cdn_host}:{hub.cdn_port}") as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.endpoint)
        yield mirror


def _cdn_gets(hub: HubSim, name: str) -> int:
    sha = hub.repos["acme/vision-gguf"].files[name].sha256
    return sum(1 for r in hub.requests_to("cdn") if r.method == "GET" and sha in r.path_qs)


@pytest.mark.timeout(180)
async def test_pull_through_olah_twice_downloads_from_the_hub_once(
    hub, olah, cli, store, tmp_path
):
    first = await cli("pull", "acme/Vision-GGUF:Q4_K_M")
    assert first.code == 0, first.err
    assert visible_files(store) == [f"acme/Vision-GGUF/{name}" for name in FILES]
    fetched = {name: _cdn_gets(hub, name) for name in FILES}
    started = {name: hub.downloads_started(name) for name in FILES}
    assert all(count >= 1 for count in fetched.values()), fetched

    second_store = tmp_path / "second-store"
    second = await cli("--store", str(second_store), "pull", "acme/Vision-GGUF:Q4_K_M")
    assert second.code == 0, second.err
    for name in FILES:
        assert _cdn_gets(hub, name) == fetched[name]  # the mirror kept it: no second download
        assert hub.downloads_started(name) == started[name]  # no new GET of the file either
        expected = hub.repos["acme/vision-gguf"].files[name].sha256
        assert sha256_of(second_store / "acme/Vision-GGUF" / name) == expected

    # The manifest says the mirror served the files, and `info` shows it.
    info = await cli("--store", str(second_store), "info", "acme/Vision-GGUF:Q4_K_M", "--json")
    assert info.code == 0, info.err
    origins = {entry["origin"] for entry in json.loads(info.out)["files"]}
    assert origins == {olah.endpoint}
    text = await cli("--store", str(second_store), "info", "acme/Vision-GGUF:Q4_K_M")
    assert f"from   {olah.endpoint}" in text.out


async def test_file_list_and_single_file_through_olah(hub, olah, cli, store):
    listing = await cli("files", "acme/Vision-GGUF", "--json")
    assert listing.code == 0, listing.err
    assert "V-Q8_0.gguf" in listing.out
    result = await cli("pull", "acme/Vision-GGUF/V-Q8_0.gguf")
    assert result.code == 0, result.err
    expected = hub.repos["acme/vision-gguf"].files["V-Q8_0.gguf"].sha256
    assert sha256_of(store / "acme/Vision-GGUF/V-Q8_0.gguf") == expected


async def test_search_through_olah_is_one_line(hub, olah, cli):
    """Olah 0.5 does not serve Hub search: the README says so, and the user gets one line."""
    result = await cli("search", "vision")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert f"{olah.endpoint} does not serve search 'vision'" in result.err
