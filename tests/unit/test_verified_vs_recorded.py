"""Only GGUF models are placed, and "verified" only means checked against a published or
user-given SHA-256 (issue 11.1, issue 10.7); the manifest says which."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.fileserver import Behaviour
from tests.helpers.hubsim import HubSim, SimFile, gguf_bytes


@pytest.fixture
async def hub(monkeypatch):
    async with HubSim() as sim:
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        yield sim


def _manifests(store) -> list[dict]:
    folder = store / ".gguf-tui" / "manifests"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []


def _nothing_left(store) -> bool:
    hidden = store / ".gguf-tui"
    leftovers = [
        p
        for sub in ("partials", "jobs")
        if (hidden / sub).exists()
        for p in (hidden / sub).iterdir()
    ]
    return visible_files(store) == [] and leftovers == [] and _manifests(store) == []


async def test_html_page_is_refused_and_nothing_is_placed(server, cli, store):
    url = server.add("/m.gguf", b"x", Behaviour(html_instead=True))
    result = await cli("pull", url)
    assert result.code == 1
    assert "the server sent an HTML page, not a GGUF file" in result.err
    assert "verified" not in result.out + result.err
    assert _nothing_left(store)  # no file, no partial, no queue record, no manifest
    assert "no models" in (await cli("ls")).out


async def test_truncated_gguf_is_refused(server, cli, store, gguf_bytes):
    short = gguf_bytes[:30_000]  # the header is whole, the tensor data is not
    url = server.add("/short.gguf", short)
    result = await cli("pull", url)
    assert result.code == 1
    assert "the file is truncated: its header needs" in result.err
    assert f"got {len(short)}" in result.err
    assert _nothing_left(store)


async def test_truncated_gguf_with_matching_sha_is_still_refused(server, cli, store, gguf_bytes):
    url = server.add("/short.gguf", gguf_bytes[:30_000])
    result = await cli("pull", url, "--sha256", server.sha256("/short.gguf"))
    assert result.code == 1 and "truncated" in result.err
    assert _nothing_left(store)


@pytest.mark.both_modes
async def test_plain_url_without_sha_is_recorded_not_verified(server, cli, store, gguf_bytes):
    url = server.add("/plain.gguf", gguf_bytes)
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "SHA-256 recorded" in result.out and "verified" not in result.out
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256_source"] == "recorded"
    listing = json.loads((await cli("ls", "--json")).out)
    [model] = listing["models"]
    assert model["state"] == "recorded"
    assert model["files"][0]["verified"] is False
    text = (await cli("ls")).out
    assert "recorded" in text and "verified" not in text
    info = await cli("info", "plain")
    assert "recorded" in info.out and "no published hash" in info.out
    assert "verified" not in info.out.replace("not verified", "")

    # The same pull with the right hash given: nothing downloaded, now verified against it.
    served = len(server.requests("/plain.gguf"))
    given = await cli("pull", url, "--sha256", server.sha256("/plain.gguf"))
    assert given.code == 0, given.err
    assert "SHA-256 verified" in given.out
    assert len(server.requests("/plain.gguf")) == served
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "verified" and model["files"][0]["sha256_source"] == "user"


@pytest.mark.both_modes
async def test_user_sha_is_verified(server, cli, store, gguf_bytes):
    url = server.add("/given.gguf", gguf_bytes)
    result = await cli("pull", url, "--sha256", server.sha256("/given.gguf"), "--json")
    assert result.code == 0, result.err
    done = [json.loads(line) for line in result.out.splitlines()][-1]
    assert done["event"] == "done" and done["verified"] is True
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256_source"] == "user"
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "verified" and model["files"][0]["verified"] is True


async def test_resumed_plain_url_with_wrong_bytes_is_not_called_verified(
    server, cli, store, gguf_bytes
):
    # The first answer is cut after a quarter; the resumed answer has a flipped byte in the
    # tensor data. Without a reference hash nothing can tell: the file is only "recorded".
    size = len(gguf_bytes)
    url = server.add("/r.gguf", gguf_bytes, Behaviour(reset_after=[size // 4], corrupt_attempts=2))
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert any(r.range_start for r in server.requests("/r.gguf"))  # it did resume
    assert sha256_of(store / "r.gguf") != server.sha256("/r.gguf")
    assert "SHA-256 recorded" in result.out and "verified" not in result.out
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "recorded"


async def test_hub_oid_not_a_sha256_is_recorded(hub, cli, store):
    data = gguf_bytes(tensor_bytes=1 << 18, seed=4)
    odd = SimFile("Odd-Q4_K_M.gguf", data, lfs_oid="x" * 40)  # a git oid, not a SHA-256
    hub.add_repo("acme/Odd-GGUF", {"Odd-Q4_K_M.gguf": odd})
    result = await cli("pull", "acme/Odd-GGUF:Q4_K_M")
    assert result.code == 0, result.err
    assert "SHA-256 recorded" in result.out and "verified" not in result.out
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256_source"] == "recorded"
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "recorded"


@pytest.mark.both_modes
async def test_hub_published_sha_is_verified(hub, cli, store):
    hub.add_repo("acme/Fine-GGUF", {"Fine-Q4_K_M.gguf": gguf_bytes(tensor_bytes=1 << 18, seed=5)})
    result = await cli("pull", "acme/Fine-GGUF:Q4_K_M")
    assert result.code == 0, result.err
    assert "SHA-256 verified" in result.out
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256_source"] == "published"
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "verified"


async def test_import_is_recorded_not_verified(cli, store, tmp_path, gguf_bytes):
    source = tmp_path / "Local-Q8_0.gguf"
    source.write_bytes(gguf_bytes)
    result = await cli("import", "--copy", str(source))
    assert result.code == 0, result.err
    [manifest] = _manifests(store)
    assert manifest["files"][0]["sha256_source"] == "recorded"
    [model] = json.loads((await cli("ls", "--json")).out)["models"]
    assert model["state"] == "recorded"
    assert (await cli("verify", "Local")).code == 0  # the recorded hash still guards the bytes


async def test_old_manifests_without_the_field_stay_readable(cli, store, gguf_bytes):
    from gguf_tui.store.layout import StoreLayout

    layout = StoreLayout(store)
    layout.ensure()
    for name, kind in (("from-hub", "hub"), ("from-url", "url")):
        (store / f"{name}.gguf").write_bytes(gguf_bytes)
        entry = {"path": f"{name}.gguf", "size": len(gguf_bytes), "sha256": "0" * 64,
                 "role": "model", "verified_at": 1.0}
        layout.manifest_path(name).write_text(json.dumps(
            {"format": 1, "name": name, "files": [entry], "source": {"kind": kind}}
        ))
    models = {m["name"]: m for m in json.loads((await cli("ls", "--json")).out)["models"]}
    assert models["from-hub"]["state"] == "verified"  # Hub downloads always had its hash
    assert models["from-url"]["state"] == "recorded"  # a plain URL may have had none
