"""HF_ENDPOINT and hub.fallback_endpoints with real nginx mirrors in front of the Hub imitation.

- a caching mirror that passes the Hub's redirects to the CDN on another host (127.0.0.2) on;
- a mirror that serves the files itself and ignores Range (the download restarts cleanly);
- a mirror that answers 503, or is not there, or answers 503 for downloads only: the next
  endpoint of hub.fallback_endpoints takes over, and the manifest says which origin served.
"""

from __future__ import annotations

import asyncio

import json

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.hubsim import HubSim, gguf_bytes
from tests.helpers.mirrors import Nginx
from tests.helpers.squid import free_port

TOKEN = "hf_mirrorTOKEN0123456789abc"
REPO = "acme/Mirrored-GGUF"


@pytest.fixture
async def hub():
    async with HubSim(token=TOKEN) as sim:
        sim.add_repo(
            REPO,
            {
                "Mi-Q4_K_M.gguf": gguf_bytes(tensor_bytes=1 << 20, seed=21),
                "mmproj-Mi-F16.gguf": gguf_bytes(tensor_bytes=1 << 17, arch="clip", seed=22),
                "Big-Q8_0.gguf": gguf_bytes(tensor_bytes=6 << 20, seed=23),
            },
        )
        yield sim


def _redirecting_mirror(hub: HubSim) -> Nginx:
    return Nginx(
        f"""
    location / {{
      proxy_pass {hub.endpoint};
      proxy_cache mirror;
      proxy_cache_valid 200 10m;
      proxy_redirect off;  # the Hub's redirects to its CDN reach the client as they are
    }}"""
    )


def _manifest_origins(store) -> dict[str, str]:
    [path] = (store / ".gguf-tui" / "manifests").glob("*.json")
    return {f["path"].rsplit("/", 1)[1]: f["origin"] for f in json.loads(path.read_text())["files"]}


def _use_config(config_file, text: str) -> None:
    config_file.write_text(config_file.read_text() + text)


async def test_mirror_that_redirects_to_another_host(hub, cli, store, monkeypatch):
    with _redirecting_mirror(hub) as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.endpoint)
        hub.repos[REPO.lower()].tags.append("gguf")
        search = await cli("search", "mirrored", "--json")
        assert search.code == 0, search.err
        assert REPO in search.out
        listing = await cli("files", REPO, "--json")
        assert listing.code == 0 and "Big-Q8_0.gguf" in listing.out, listing.err
        result = await cli("pull", f"{REPO}:Q4_K_M")
        assert result.code == 0, result.err
        assert visible_files(store) == [f"{REPO}/Mi-Q4_K_M.gguf", f"{REPO}/mmproj-Mi-F16.gguf"]
        assert any("/resolve/" in line and " 302" in line for line in mirror.log_lines())
    # The bytes came from the CDN host the mirror redirected to, straight from the client.
    cdn_gets = [r for r in hub.requests_to("cdn") if r.method == "GET"]
    assert cdn_gets and not any("Authorization" in r.headers for r in cdn_gets)
    assert set(_manifest_origins(store).values()) == {mirror.endpoint}


async def test_mirror_without_range_support_restarts_cleanly(hub, cli, store, config_file, monkeypatch):
    body = f"""
    max_ranges 0;  # never answers a Range request with 206
    location /cdn/ {{
      proxy_pass {hub.cdn_origin}/;
      proxy_set_header Range "";
      proxy_set_header If-Range "";
    }}
    location / {{
      proxy_pass {hub.endpoint};
      proxy_redirect {hub.cdn_origin}/ http://127.0.0.1:{{port}}/cdn/;  # serves files itself
    }}"""
    _use_config(config_file, "")
    config_file.write_text(
        config_file.read_text().replace("downloads:\n", "downloads:\n  min_segment_size: 1M\n")
    )
    with Nginx(body) as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.endpoint)
        result = await cli("pull", f"{REPO}/Big-Q8_0.gguf", "--connections", "4")
        assert result.code == 0, result.err
        ranged = [line for line in mirror.log_lines() if "/cdn/" in line and "range=bytes=" in line]
        assert ranged and all(line.endswith(" 200") for line in ranged), mirror.log_lines()
    expected = hub.repos[REPO.lower()].files["Big-Q8_0.gguf"].sha256
    assert sha256_of(store / REPO / "Big-Q8_0.gguf") == expected


async def test_mirror_answering_503_falls_over_to_the_next_endpoint(
    hub, cli, store, config_file, monkeypatch
):
    with Nginx("    location / { return 503; }") as down:
        monkeypatch.setenv("HF_ENDPOINT", down.endpoint)
        _use_config(config_file, f"hub:\n  fallback_endpoints: [{hub.endpoint}]\n")
        result = await cli("pull", f"{REPO}:Q4_K_M")
        assert result.code == 0, result.err
        assert any(line.endswith(" 503") for line in down.log_lines())
    assert visible_files(store) == [f"{REPO}/Mi-Q4_K_M.gguf", f"{REPO}/mmproj-Mi-F16.gguf"]
    assert set(_manifest_origins(store).values()) == {hub.endpoint}
    info = await cli("info", f"{REPO}:Q4_K_M", "--json")
    assert {f["origin"] for f in json.loads(info.out)["files"]} == {hub.endpoint}


async def _logged(mirror: Nginx, at_least: int, patience: float = 5.0) -> int:
    """How many requests nginx has logged, once it has logged `at_least` (it writes the line
    after the answer is sent, so a client can be ahead of the log) or `patience` ran out."""
    deadline = asyncio.get_running_loop().time() + patience
    while len(mirror.log_lines()) < at_least and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # a line still on its way for an answer already read
    return len(mirror.log_lines())


async def test_the_fallback_stays_in_use_then_the_first_is_tried_again(hub):
    """A dead mirror does not cost every call a failed try; after FALLBACK_STICKY it gets
    another chance (the clock is the client's injectable one)."""
    from gguf_tui.hub import HubClient
    from gguf_tui.hub.transport import FALLBACK_STICKY

    now = [1000.0]
    with Nginx("    location / { return 503; }") as down:
        async with HubClient(
            down.endpoint, token=None, fallback_endpoints=[hub.endpoint], clock=lambda: now[0]
        ) as client:
            assert (await client.repo_info(REPO)).id == REPO
            assert client.endpoint == hub.endpoint
            tried = await _logged(down, at_least=1)
            await client.repo_info(REPO)
            assert await _logged(down, at_least=tried) == tried  # not asked again ...
            now[0] += FALLBACK_STICKY + 1
            await client.repo_info(REPO)
            assert await _logged(down, at_least=tried + 1) > tried  # ... until its time is up


async def test_unreachable_endpoint_falls_over_and_the_token_follows(
    hub, cli, store, config_file, monkeypatch
):
    """The token goes to the configured fallback endpoint (a Hub the user chose), not the CDN."""
    hub.add_repo("acme/Gated", {"G-Q4_K_M.gguf": gguf_bytes(seed=31)}, gated=True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    _use_config(config_file, f"hub:\n  fallback_endpoints: [{hub.endpoint}]\n")
    result = await cli("pull", "acme/Gated:Q4_K_M")
    assert result.code == 0, result.err
    assert any(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in hub.requests_to("api"))
    assert not any("Authorization" in r.headers for r in hub.requests_to("cdn"))


async def test_downloads_fall_over_when_only_the_files_fail(hub, cli, store, config_file, monkeypatch):
    """The mirror lists files but answers 503 for them: each download moves to the fallback."""
    body = f"""
    location ~ /resolve/ {{ return 503; }}
    location / {{ proxy_pass {hub.endpoint}; }}"""
    with Nginx(body) as half:
        monkeypatch.setenv("HF_ENDPOINT", half.endpoint)
        _use_config(config_file, f"hub:\n  fallback_endpoints: [{hub.endpoint}]\n")
        result = await cli("pull", f"{REPO}:Q4_K_M")
        assert result.code == 0, result.err
        assert [line for line in half.log_lines() if "/resolve/" in line and line.endswith(" 503")]
    assert set(_manifest_origins(store).values()) == {hub.endpoint}
    expected = hub.repos[REPO.lower()].files["Mi-Q4_K_M.gguf"].sha256
    assert sha256_of(store / REPO / "Mi-Q4_K_M.gguf") == expected


async def test_without_fallbacks_a_503_mirror_is_one_clear_line(hub, cli, monkeypatch):
    with Nginx("    location / { return 503; }") as down:
        monkeypatch.setenv("HF_ENDPOINT", down.endpoint)
        result = await cli("pull", f"{REPO}:Q4_K_M")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "503" in lines[0], result.err


def test_credentials_go_to_the_endpoints_and_their_mirrors_only():
    from gguf_tui.engine.spec import FileRequest

    request = FileRequest(
        url="http://mirror:8090/acme/M/resolve/abc/M.gguf",
        dest="acme/M/M.gguf",
        auth_headers={"Authorization": "Bearer t"},
        auth_origin="http://mirror:8090",
        mirror_urls=["https://huggingface.co/acme/M/resolve/abc/M.gguf"],
    )
    assert request.sends_auth_to("http://mirror:8090/x")
    assert request.sends_auth_to("https://huggingface.co/acme/M/resolve/abc/M.gguf")
    assert not request.sends_auth_to("https://cdn-lfs.hf.co/repos/x?X-Amz-Signature=s")
    assert not request.sends_auth_to("http://mirror:8091/x")
    # Headers that belong to another origin than the stable URL's never spread to its mirrors.
    elsewhere = FileRequest(
        url="http://mirror:8090/m.gguf", dest="m.gguf", auth_headers={"Authorization": "x"},
        auth_origin="http://auth.lan:80", mirror_urls=["https://huggingface.co/m.gguf"],
    )
    assert not elsewhere.sends_auth_to("https://huggingface.co/m.gguf")
