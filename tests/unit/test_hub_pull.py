"""`gguf-tui pull` of Hub refs end to end, against the local Hub imitation (API + CDN hosts)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.hubsim import HubSim, SimFile, gguf_bytes

TOKEN = "hf_testTOKEN0123456789abcdef"


@pytest.fixture
async def hub(monkeypatch):
    async with HubSim(token=TOKEN) as sim:
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        yield sim


def _manifests(store):
    return [json.loads(p.read_text()) for p in (store / ".gguf-tui" / "manifests").glob("*.json")]


def _all_text_under(store) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in store.rglob("*.json") if p.is_file()
    )


@pytest.mark.both_modes
async def test_quant_with_mmproj_is_one_model_two_files(hub, cli, store):
    q4 = gguf_bytes(tensor_bytes=1 << 20, seed=1)
    mmproj = gguf_bytes(tensor_bytes=1 << 18, arch="clip", seed=2)
    hub.add_repo(
        "acme/Tiny-GGUF",
        {"Tiny-Q4_K_M.gguf": q4, "Tiny-Q8_0.gguf": gguf_bytes(seed=3), "mmproj-Tiny-F16.gguf": mmproj},
    )
    result = await cli("pull", "acme/Tiny-GGUF:q4_k_m")
    assert result.code == 0, result.err
    files = {f for f in visible_files(store)}
    assert files == {"acme/Tiny-GGUF/Tiny-Q4_K_M.gguf", "acme/Tiny-GGUF/mmproj-Tiny-F16.gguf"}
    [manifest] = _manifests(store)
    assert manifest["name"] == "acme/Tiny-GGUF:Q4_K_M"
    by_role = {f["role"]: f for f in manifest["files"]}
    repo = hub.repos["acme/tiny-gguf"]
    assert by_role["model"]["sha256"] == repo.files["Tiny-Q4_K_M.gguf"].sha256
    assert by_role["mmproj"]["sha256"] == repo.files["mmproj-Tiny-F16.gguf"].sha256
    assert sha256_of(store / "acme/Tiny-GGUF/Tiny-Q4_K_M.gguf") == repo.files["Tiny-Q4_K_M.gguf"].sha256
    # Signed CDN URLs are never persisted.
    assert "Signature" not in _all_text_under(store)


async def test_no_mmproj_flag(hub, cli, store):
    hub.add_repo("acme/T", {"T-Q4_K_M.gguf": gguf_bytes(seed=1), "mmproj-T-f16.gguf": gguf_bytes(seed=2)})
    result = await cli("pull", "hf.co/acme/T:Q4_K_M", "--no-mmproj")
    assert result.code == 0, result.err
    assert visible_files(store) == ["acme/T/T-Q4_K_M.gguf"]


async def test_split_quant_is_one_model_three_parts(hub, cli, store):
    parts = {
        f"Q4_K_M/Big-Q4_K_M-{i:05d}-of-00003.gguf": gguf_bytes(tensor_bytes=1 << 19, seed=10 + i)
        for i in (1, 2, 3)
    }
    hub.add_repo("acme/Big-GGUF", parts)
    result = await cli("pull", f"{hub.endpoint}/acme/Big-GGUF:Q4_K_M")
    assert result.code == 0, result.err
    assert visible_files(store) == [
        f"acme/Big-GGUF/Big-Q4_K_M-{i:05d}-of-00003.gguf" for i in (1, 2, 3)
    ]
    [manifest] = _manifests(store)
    assert len(manifest["files"]) == 3
    for entry in manifest["files"]:
        name = "Q4_K_M/" + entry["path"].rsplit("/", 1)[1]
        assert entry["sha256"] == hub.repos["acme/big-gguf"].files[name].sha256


@pytest.mark.both_modes
async def test_gated_without_token_then_with_token(hub, cli, store, monkeypatch):
    hub.add_repo("meta/Gated-GGUF", {"G-Q4_K_M.gguf": gguf_bytes(seed=5)}, gated=True)
    denied = await cli("pull", "meta/Gated-GGUF:Q4_K_M")
    assert denied.code == 1
    assert "gated" in denied.err and "HF_TOKEN" in denied.err
    assert visible_files(store) == []

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    allowed = await cli("pull", "meta/Gated-GGUF:Q4_K_M", "--json")
    assert allowed.code == 0, allowed.err
    assert visible_files(store) == ["meta/Gated-GGUF/G-Q4_K_M.gguf"]
    cdn = hub.requests_to("cdn")
    assert cdn, "the file came from the CDN host"
    assert all("Authorization" not in r.headers for r in cdn)
    assert any("Authorization" in r.headers for r in hub.requests_to("api"))
    assert TOKEN not in allowed.out + allowed.err + denied.out + denied.err
    for path in store.rglob("*"):
        if path.is_file() and path.suffix != ".gguf":
            assert TOKEN not in path.read_text(errors="replace"), path


async def test_expired_signed_url_is_resolved_again_and_resumed(hub, cli, store):
    data = gguf_bytes(tensor_bytes=3 << 20, seed=9)
    hub.add_repo("acme/R", {"R-Q4_K_M.gguf": data})
    hub.cdn_rate = 2_000_000
    hub.cdn_drop_after = len(data) // 3
    hub.cdn_drop_times = 1
    task = asyncio.ensure_future(cli("pull", "acme/R:Q4_K_M", "--connections", "1"))
    # After the drop, every signed URL handed out so far has expired.
    while not any(r.status == 206 or r.status == 200 for r in hub.requests_to("cdn")):
        await asyncio.sleep(0.02)
    hub.expire_signed_urls()
    hub.cdn_rate = None
    result = await task
    assert result.code == 0, result.err
    cdn = hub.requests_to("cdn")
    assert any(r.status == 403 for r in cdn), [r.status for r in cdn]
    resumed = [r for r in cdn if r.status == 206]
    assert resumed and resumed[-1].headers["Range"].startswith("bytes=") 
    assert not resumed[-1].headers["Range"].startswith("bytes=0-")  # resumed, not restarted
    resolves = [r for r in hub.requests_to("api") if "/resolve/" in r.path_qs]
    assert len(resolves) >= 2
    assert sha256_of(store / "acme/R/R-Q4_K_M.gguf") == hub.repos["acme/r"].files["R-Q4_K_M.gguf"].sha256


async def test_escaping_path_is_refused(hub, cli, store, tmp_path):
    hub.add_repo("evil/R", {"../../escape.gguf": gguf_bytes(seed=1)})
    result = await cli("pull", "evil/R/../../escape.gguf")
    assert result.code in (1, 2)
    assert "escape" in result.err or "refus" in result.err
    assert not (tmp_path / "escape.gguf").exists()
    assert not list(tmp_path.rglob("escape.gguf"))
    assert visible_files(store) == []


async def test_escape_sequences_in_file_name(hub, cli, store):
    name = "Bad\x1b[31mRed\x1b]0;title\x07-Q4_K_M.gguf"
    hub.add_repo("odd/R", {name: gguf_bytes(seed=4)})
    result = await cli("pull", "odd/R:Q4_K_M")
    assert result.code == 0, result.err
    assert "\x1b" not in result.out + result.err
    [stored] = visible_files(store)
    assert "\x1b" not in stored and "\x07" not in stored
    assert stored.startswith("odd/R/") and stored.endswith("-Q4_K_M.gguf")


async def test_wrong_lfs_oid_is_corruption(hub, cli, store):
    content = gguf_bytes(seed=6)
    hub.add_repo("acme/W", {"W-Q4_K_M.gguf": SimFile("W-Q4_K_M.gguf", content, lfs_oid="0" * 64)})
    result = await cli("pull", "acme/W:Q4_K_M")
    assert result.code == 1
    assert "download corrupted" in result.err
    assert visible_files(store) == []
