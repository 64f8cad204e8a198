"""resolve_ref: a REF becomes ONE JobSpec with resolve URLs, hashes, sizes and roles."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gguf_tui.hub import HubError, resolve_ref
from gguf_tui.hub.auth import origin_of
from tests.helpers.hubsim import DEFAULT_TOKEN, HubSim, SimFile, hub_config


@pytest.fixture(autouse=True)
def _no_user_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _blob(tag: str, size: int = 100) -> bytes:
    return (tag.encode() * size)[:size]


@pytest.fixture
async def hub():
    async with HubSim() as sim:
        sim.add_repo(
            "acme/Model-GGUF",
            {
                "Model-Q4_K_M.gguf": _blob("q4", 400),
                "Model-Q8_0.gguf": _blob("q8", 800),
                "Model-Q2_K.gguf": _blob("q2", 200),
                "mmproj-Model-BF16.gguf": _blob("mb", 50),
                "mmproj-Model-F16.gguf": _blob("mf", 50),
                "README.md": SimFile("README.md", b"hi", lfs=False),
            },
        )
        sim.add_repo(
            "acme/Split-GGUF",
            {
                **{f"Q4_K_M/Split-Q4_K_M-{i:05d}-of-00003.gguf": _blob(f"p{i}", 300) for i in (1, 2, 3)},
                "Split-Q5_K_M.gguf": _blob("q5", 500),
                "Broken-Q8_0-00001-of-00002.gguf": _blob("b1", 10),
            },
        )
        sim.add_repo("acme/Gated-GGUF", {"Gated-Q4_K_M.gguf": _blob("g", 100)}, gated=True)
        sim.add_repo("acme/NoQ4-GGUF", {"N-Q3_K_M.gguf": b"3" * 30, "N-Q6_K.gguf": b"6" * 60})
        yield sim


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as http:
        yield http


async def test_quant_ref_gives_model_and_preferred_mmproj(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    spec = await resolve_ref("acme/Model-GGUF:q4_k_m", config, session)
    repo = hub.repos["acme/model-gguf"]
    assert spec.name == "acme/Model-GGUF:Q4_K_M"
    assert [(f.role, f.dest) for f in spec.files] == [
        ("model", "acme/Model-GGUF/Model-Q4_K_M.gguf"),
        ("mmproj", "acme/Model-GGUF/mmproj-Model-F16.gguf"),
    ]
    model = spec.files[0]
    assert model.url == f"{hub.endpoint}/acme/Model-GGUF/resolve/{repo.sha}/Model-Q4_K_M.gguf"
    assert model.revision == repo.sha
    assert model.expected_sha256 == repo.files["Model-Q4_K_M.gguf"].sha256
    assert model.expected_size == 400
    assert model.auth_headers == {} and model.auth_origin is None
    assert spec.total_size == 450
    assert spec.license == "apache-2.0"
    assert spec.source == {
        "kind": "hub",
        "repo": "acme/Model-GGUF",
        "revision": repo.sha,
        "revision_name": "main",
        "quant": "Q4_K_M",
        "files": ["Model-Q4_K_M.gguf", "mmproj-Model-F16.gguf"],
        "endpoint": hub.endpoint,
    }
    assert not hub.requests_to("cdn")


async def test_default_quant_and_no_mmproj(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    spec = await resolve_ref(f"{hub.endpoint}/acme/Model-GGUF", config, session, no_mmproj=True)
    assert spec.name == "acme/Model-GGUF:Q4_K_M"
    assert [f.role for f in spec.files] == ["model"]


async def test_prefer_mmproj_setting(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    config.hub.prefer_mmproj = "BF16"
    spec = await resolve_ref("acme/Model-GGUF:Q8_0", config, session)
    assert spec.files[-1].dest.endswith("mmproj-Model-BF16.gguf")


async def test_default_falls_back_to_the_closest_quant(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    spec = await resolve_ref("hf.co/acme/NoQ4-GGUF", config, session)
    assert spec.name == "acme/NoQ4-GGUF:Q3_K_M"


async def test_split_quant_gives_all_parts_in_one_spec(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    spec = await resolve_ref("acme/Split-GGUF:Q4_K_M", config, session)
    assert spec.name == "acme/Split-GGUF:Q4_K_M"
    assert [f.role for f in spec.files] == ["part", "part", "part"]
    assert [f.dest for f in spec.files] == [
        f"acme/Split-GGUF/Split-Q4_K_M-{i:05d}-of-00003.gguf" for i in (1, 2, 3)
    ]
    assert spec.total_size == 900
    assert all("/resolve/" in f.url and "/Q4_K_M/" in f.url for f in spec.files)
    assert len({f.key_hash for f in spec.files}) == 3
    # Naming one part pulls the whole split.
    by_path = await resolve_ref("acme/Split-GGUF/Q4_K_M/Split-Q4_K_M-00002-of-00003.gguf", config, session)
    assert [f.dest for f in by_path.files] == [f.dest for f in spec.files]


async def test_file_ref_gives_one_file(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    spec = await resolve_ref("https://huggingface.co/acme/Model-GGUF/blob/main/Model-Q8_0.gguf", config, session)
    assert spec.name == "acme/Model-GGUF/Model-Q8_0.gguf"
    (only,) = spec.files
    assert only.role == "model" and only.expected_size == 800
    projector = await resolve_ref("acme/Model-GGUF/mmproj-Model-F16.gguf", config, session)
    assert [f.role for f in projector.files] == ["mmproj"]


async def test_resolution_errors(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    with pytest.raises(HubError) as caught:
        await resolve_ref("acme/Model-GGUF:Q5_K_M", config, session)
    assert caught.value.kind == "unknown_quant"
    assert "available: Q2_K, Q4_K_M, Q8_0" in str(caught.value)
    with pytest.raises(HubError, match="incomplete") as caught:
        await resolve_ref("acme/Split-GGUF:Q8_0", config, session)
    assert "missing part(s) 2" in str(caught.value)
    with pytest.raises(HubError, match="not found in acme/Model-GGUF"):
        await resolve_ref("acme/Model-GGUF/nope.gguf", config, session)
    with pytest.raises(HubError, match="acme/Nothing not found"):
        await resolve_ref("acme/Nothing:Q4_K_M", config, session)
    with pytest.raises(HubError, match="revision 'v2' not found"):
        await resolve_ref("acme/Model-GGUF@v2:Q4_K_M", config, session)


async def test_gated_without_token_says_what_to_do(hub, session, tmp_path) -> None:
    config = hub_config(hub.endpoint, tmp_path / "store")
    with pytest.raises(HubError) as caught:
        await resolve_ref("acme/Gated-GGUF:Q4_K_M", config, session)
    message = str(caught.value)
    assert caught.value.kind == "gated"
    assert "gated" in message and "accept the terms" in message and "HF_TOKEN" in message


async def test_token_only_in_auth_headers(hub, session, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", DEFAULT_TOKEN)
    config = hub_config(hub.endpoint, tmp_path / "store")
    spec = await resolve_ref("acme/Gated-GGUF:Q4_K_M", config, session)
    (request,) = spec.files
    assert request.auth_headers == {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    assert request.auth_origin == origin_of(hub.endpoint) == hub.endpoint
    everything_else = json.dumps(
        [spec.name, spec.source, spec.license, request.url, request.dest, request.resume_key]
    )
    assert DEFAULT_TOKEN not in everything_else
    assert DEFAULT_TOKEN not in repr(spec)
    # The token went to the Hub's API, never to the CDN.
    assert all("Authorization" not in r.headers for r in hub.requests_to("cdn"))


async def test_gated_with_token_without_access(hub, session, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_no_access_999")
    config = hub_config(hub.endpoint, tmp_path / "store")
    with pytest.raises(HubError) as caught:
        await resolve_ref("acme/Gated-GGUF:Q4_K_M", config, session)
    assert "no access" in str(caught.value)
    assert "hf_no_access_999" not in str(caught.value)


async def test_escape_names_get_safe_dest_and_unsafe_paths_are_refused(session, tmp_path) -> None:
    evil = "evil\x1b]0;pwned\x07name-Q4_K_M.gguf"
    async with HubSim() as hub:
        hub.add_repo("o/r", {evil: b"e" * 10, "../../escape-Q8_0.gguf": b"x"})
        config = hub_config(hub.endpoint, tmp_path / "store")
        spec = await resolve_ref("o/r:Q4_K_M", config, session)
        (request,) = spec.files
        assert request.dest == "o/r/evilname-Q4_K_M.gguf"
        assert "\x1b" not in json.dumps(spec.source) and "\x1b" not in spec.name
        with pytest.raises(HubError) as caught:
            await resolve_ref("o/r:Q8_0", config, session)
        assert caught.value.kind == "unknown_quant"  # the unsafe file is not offered at all
        with pytest.raises(HubError) as caught:
            await resolve_ref("o/r/../../escape-Q8_0.gguf", config, session)
        assert caught.value.kind == "unsafe_path"
