"""Pulls through a real squid forward proxy on loopback (Debian's `squid`, installed when missing).

Proves issue 15's proxy acceptance: HTTP_PROXY / ALL_PROXY / network.proxy route the Hub API,
resolves and CDN byte ranges through squid (its access log and the `Via` header the origin sees
say so), a caching squid serves a second pull from a second store without the origin seeing
the file again, and a proxy that refuses (407, nothing listening) is one line naming the proxy
with no credentials in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.hubsim import HubSim, gguf_bytes
from tests.helpers.squid import Squid, free_port

TOKEN = "hf_proxyTestTOKEN0123456789"
PASSWORD = "pr0xyS3cretPW"


@pytest.fixture(scope="module")
def squid():
    with Squid() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def squid_auth():
    with Squid(basic_auth={"alice": PASSWORD}, cache=False) as proxy:
        yield proxy


@pytest.fixture
async def hub(monkeypatch):
    async with HubSim(token=TOKEN) as sim:
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        yield sim


def _add_model(hub: HubSim, repo: str, *, tensor_bytes: int = 1 << 20) -> None:
    hub.add_repo(
        repo,
        {
            "M-Q4_K_M.gguf": gguf_bytes(tensor_bytes=tensor_bytes, seed=1),
            "mmproj-M-F16.gguf": gguf_bytes(tensor_bytes=1 << 17, arch="clip", seed=2),
        },
    )


def _lines_for(proxy: Squid, text: str) -> list[str]:
    return [line for line in proxy.log_lines() if text in line]


def _all_through(hub: HubSim) -> bool:
    """Every request the imitation saw came through squid (it adds `Via: ... (squid/...)`)."""
    return bool(hub.requests) and all("squid" in r.headers.get("Via", "") for r in hub.requests)


def _store_text(store: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in store.rglob("*") if p.is_file()
    )


@pytest.mark.both_modes
async def test_pull_through_http_proxy_goes_through_squid_and_verifies(
    hub, cli, store, squid, monkeypatch, engine_mode
):
    """HTTP_PROXY set where the CLI runs reaches the engine, in-process or the service it starts."""
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    repo = f"acme/Proxied-{engine_mode}"
    _add_model(hub, repo)
    result = await cli("pull", f"{repo}:Q4_K_M")
    assert result.code == 0, result.err
    assert visible_files(store) == [f"{repo}/M-Q4_K_M.gguf", f"{repo}/mmproj-M-F16.gguf"]
    sim_file = hub.repos[repo.lower()].files["M-Q4_K_M.gguf"]
    assert sha256_of(store / repo / "M-Q4_K_M.gguf") == sim_file.sha256
    assert _all_through(hub)
    # squid's own log shows the API calls, the resolve redirects and the CDN downloads.
    assert _lines_for(squid, f"{hub.endpoint}/api/models/{repo}/tree/")
    assert _lines_for(squid, f"{hub.endpoint}/{repo}/resolve/")
    assert len(_lines_for(squid, f"{hub.cdn_origin}/repos/")) >= 2  # model + mmproj


def _service_pids() -> set[str]:
    import os

    folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "gguf-tui"
    return {lock.read_text().strip() for lock in folder.glob("engine-*.lock")}


@pytest.mark.parametrize("engine_mode", ["service"], indirect=True)
async def test_a_running_service_uses_the_proxy_of_the_command_that_asks(
    hub, cli, store, squid, monkeypatch
):
    """The trap of a long-lived server: a service started from a shell without a proxy still
    routes the next pull through the proxy that pull's shell sets, and back."""
    _add_model(hub, "acme/Before")
    first = await cli("pull", "acme/Before:Q4_K_M")  # starts the service, no proxy anywhere
    assert first.code == 0, first.err
    service = _service_pids()
    assert service and not any("Via" in r.headers for r in hub.requests)

    hub.clear_requests()
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    _add_model(hub, "acme/After")
    second = await cli("pull", "acme/After:Q4_K_M")
    assert second.code == 0, second.err
    assert _service_pids() == service  # the same service process ...
    assert _all_through(hub)  # ... used this command's proxy for the resolve and the download

    hub.clear_requests()
    monkeypatch.delenv("HTTP_PROXY")
    _add_model(hub, "acme/Later")
    third = await cli("pull", "acme/Later:Q4_K_M")
    assert third.code == 0, third.err
    assert hub.requests and not any("Via" in r.headers for r in hub.requests)


@pytest.mark.parametrize("engine_mode", ["service"], indirect=True)
async def test_a_dashboard_sends_its_proxy_to_a_running_service(
    hub, cli, store, config_file, squid, monkeypatch
):
    """The same trap from the dashboard: a download queued there goes through the proxy of the
    dashboard's shell, not the environment the service was started with."""
    from gguf_tui.config import load_config
    from gguf_tui.engine.api import JobState
    from gguf_tui.tui.app import GgufApp
    from tests.ui.conftest import wait_for

    _add_model(hub, "acme/Before")
    first = await cli("pull", "acme/Before:Q4_K_M")  # starts the service, no proxy anywhere
    assert first.code == 0, first.err
    service = _service_pids()

    hub.clear_requests()
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    _add_model(hub, "acme/Dash")
    app = GgufApp(load_config(config_file))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._engine_ready, what="attached")
        assert app.engine_kind == "service"
        app.enqueue_ref("acme/Dash:Q4_K_M")
        await wait_for(
            pilot,
            lambda: any(v.state == JobState.COMPLETED and "Dash" in v.name for v in app.jobs.values()),
            timeout=30,
            what="the dashboard's download done",
        )
        app.exit()
    assert _service_pids() == service
    assert _all_through(hub)


async def test_second_pull_into_an_empty_store_is_served_by_the_caching_proxy(
    hub, cli, store, tmp_path, squid, monkeypatch
):
    """The recipe "a caching proxy": the origin sees the file once for two stores."""
    hub.cache_seconds = 3600
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    _add_model(hub, "acme/Cached", tensor_bytes=2 << 20)
    first = await cli("pull", "acme/Cached:Q4_K_M")
    assert first.code == 0, first.err
    started = hub.downloads_started("M-Q4_K_M.gguf")
    cdn_gets = len([r for r in hub.requests_to("cdn") if r.method == "GET"])
    assert started >= 1 and cdn_gets >= 2

    second_store = tmp_path / "second-store"
    second = await cli("--store", str(second_store), "pull", "acme/Cached:Q4_K_M")
    assert second.code == 0, second.err
    assert hub.downloads_started("M-Q4_K_M.gguf") == started  # no second GET of the file
    assert len([r for r in hub.requests_to("cdn") if r.method == "GET"]) == cdn_gets
    for name in ("M-Q4_K_M.gguf", "mmproj-M-F16.gguf"):
        expected = hub.repos["acme/cached"].files[name].sha256
        assert sha256_of(second_store / "acme/Cached" / name) == expected
    hits = [line for line in _lines_for(squid, f"{hub.cdn_origin}/repos/") if "HIT/" in line]
    assert len(hits) >= 2, squid.log_lines()[-6:]


async def test_multi_connection_ranged_pull_through_proxy(
    hub, cli, store, config_file, squid_auth, monkeypatch
):
    """Several connections, each asking byte ranges, all through the (non-caching, so ranges
    reach the origin as sent) proxy with credentials."""
    config_file.write_text(
        config_file.read_text().replace("downloads:\n", "downloads:\n  min_segment_size: 1M\n")
    )
    monkeypatch.setenv("HTTP_PROXY", squid_auth.url_with("alice", PASSWORD))
    hub.add_repo("acme/Ranged", {"R-Q8_0.gguf": gguf_bytes(tensor_bytes=6 << 20, seed=5)})
    result = await cli("pull", "acme/Ranged/R-Q8_0.gguf", "--connections", "4")
    assert result.code == 0, result.err
    expected = hub.repos["acme/ranged"].files["R-Q8_0.gguf"].sha256
    assert sha256_of(store / "acme/Ranged/R-Q8_0.gguf") == expected
    ranged = [r for r in hub.requests_to("cdn") if r.headers.get("Range", "").startswith("bytes=")]
    assert len(ranged) >= 2, hub.requests_to("cdn")  # several ranges of one file ...
    assert _all_through(hub)  # ... every one of them through squid


async def test_all_proxy_is_used_when_http_proxy_is_unset(hub, cli, store, squid, monkeypatch):
    monkeypatch.setenv("ALL_PROXY", squid.url)
    _add_model(hub, "acme/AllProxy")
    result = await cli("pull", "acme/AllProxy:Q4_K_M")
    assert result.code == 0, result.err
    assert _all_through(hub)


async def test_search_goes_through_the_proxy(hub, cli, squid, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # https targets only: not these
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    _add_model(hub, "acme/Searchable-GGUF")
    hub.repos["acme/searchable-gguf"].tags.append("gguf")
    result = await cli("search", "searchable", "--json")
    assert result.code == 0, result.err
    assert "acme/Searchable-GGUF" in result.out
    assert _all_through(hub)


async def test_remote_header_reads_go_through_the_proxy(hub, cli, squid_auth, monkeypatch):
    """`files --fit` reads GGUF headers with Range requests: through the proxy too (the
    non-caching one, so the ranges reach the origin as sent)."""
    monkeypatch.setenv("HTTP_PROXY", squid_auth.url_with("alice", PASSWORD))
    monkeypatch.setenv("GGUF_TUI_GPUS", "24G")
    _add_model(hub, "acme/Fitted")
    result = await cli("files", "acme/Fitted", "--fit", "--json")
    assert result.code == 0, result.err
    fits = {g["quant"]: g["fit"] for g in json.loads(result.out)["quants"]}
    assert fits["Q4_K_M"]["status"] == "gpu"
    assert any("Range" in r.headers for r in hub.requests_to("cdn"))
    assert _all_through(hub)


async def test_network_proxy_none_wins_over_the_environment(hub, cli, store, config_file, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    config_file.write_text(config_file.read_text() + "network:\n  proxy: none\n")
    _add_model(hub, "acme/Direct")
    result = await cli("pull", "acme/Direct:Q4_K_M")
    assert result.code == 0, result.err
    assert not any("Via" in r.headers for r in hub.requests)


async def test_network_proxy_wins_over_the_environment(hub, cli, store, config_file, squid, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    config_file.write_text(config_file.read_text() + f"network:\n  proxy: {squid.url}\n")
    _add_model(hub, "acme/Configured")
    result = await cli("pull", "acme/Configured:Q4_K_M")
    assert result.code == 0, result.err
    assert _all_through(hub)


async def test_no_proxy_sends_listed_hosts_direct(hub, cli, store, squid, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")  # the CDN host: direct; the API: through squid
    _add_model(hub, "acme/Split")
    result = await cli("pull", "acme/Split:Q4_K_M")
    assert result.code == 0, result.err
    assert hub.requests_to("cdn") and not any("Via" in r.headers for r in hub.requests_to("cdn"))
    assert all("Via" in r.headers for r in hub.requests_to("api"))


async def test_token_goes_only_to_the_hub_origin_through_the_proxy(hub, cli, store, squid, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.add_repo("acme/Gated", {"G-Q4_K_M.gguf": gguf_bytes(seed=7)}, gated=True)
    result = await cli("pull", "acme/Gated:Q4_K_M")
    assert result.code == 0, result.err
    assert _all_through(hub)
    assert not any("Authorization" in r.headers for r in hub.requests_to("cdn"))
    assert any(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in hub.requests_to("api"))


async def test_proxy_with_right_credentials_works(hub, cli, store, squid_auth, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", squid_auth.url_with("alice", PASSWORD))
    _add_model(hub, "acme/Authed")
    result = await cli("pull", "acme/Authed:Q4_K_M")
    assert result.code == 0, result.err
    assert _all_through(hub)
    assert not any("Proxy-Authorization" in r.headers for r in hub.requests)  # squid's, not theirs
    assert PASSWORD not in result.err + result.out + _store_text(store)


@pytest.mark.both_modes
async def test_wrong_proxy_credentials_fail_with_one_line_without_them(
    hub, cli, store, squid_auth, monkeypatch
):
    wrong = "wrongPASSword99"
    monkeypatch.setenv("HTTP_PROXY", squid_auth.url_with("alice", wrong))
    _add_model(hub, "acme/Refused")
    result = await cli("pull", "acme/Refused:Q4_K_M")
    assert result.code == 1, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert squid_auth.url in lines[0] and "407" in lines[0]
    assert "user and password" in lines[0]
    import os

    state = Path(os.environ["XDG_STATE_HOME"])  # the service's log lives there
    for secret in (wrong, PASSWORD):
        assert secret not in result.err + result.out
        assert secret not in _store_text(store) if store.exists() else True
        assert secret not in _store_text(state) if state.exists() else True
    assert not hub.requests  # nothing got past the proxy


async def test_wrong_credentials_on_a_plain_url_download(server, cli, store, squid_auth, monkeypatch, gguf_bytes):
    """The engine's own downloads (not only Hub API calls) stop at once on a 407."""
    monkeypatch.setenv("HTTP_PROXY", squid_auth.url_with("alice", "nope"))
    url = server.add("/model.gguf", gguf_bytes)
    result = await cli("pull", url)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert squid_auth.url in lines[0] and "407" in lines[0]
    assert "nope" not in result.err
    assert len(server.log) == 0


async def test_wrong_credentials_on_a_tunnelled_https_download(cli, store, squid_auth, monkeypatch):
    """https targets go through CONNECT: the proxy's 407 to it is the same one line."""
    monkeypatch.setenv("HTTPS_PROXY", squid_auth.url_with("alice", "nope"))
    result = await cli("pull", f"https://127.0.0.1:{free_port()}/m.gguf")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert squid_auth.url in lines[0] and "407" in lines[0]
    assert "nope" not in result.err


async def test_proxy_that_does_not_answer_is_one_line_naming_it(hub, cli, store, monkeypatch):
    port = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://bob:hunter2@127.0.0.1:{port}")
    _add_model(hub, "acme/Nowhere")
    result = await cli("pull", "acme/Nowhere:Q4_K_M")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert f"proxy http://127.0.0.1:{port} (connection refused)" in lines[0]
    assert "hunter2" not in result.err and "bob" not in result.err


async def test_proxy_that_cannot_reach_the_hub_says_so_and_falls_over(
    hub, cli, store, config_file, squid, monkeypatch
):
    """squid's own 503 (it cannot reach the endpoint) names the proxy; with a fallback endpoint
    the pull goes on there, still through the proxy."""
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTP_PROXY", squid.url)
    monkeypatch.setenv("HF_ENDPOINT", dead)
    _add_model(hub, "acme/Behind")
    alone = await cli("pull", "acme/Behind:Q4_K_M")
    assert alone.code == 1
    lines = alone.err.strip().splitlines()
    assert len(lines) == 1, alone.err
    assert f"the proxy {squid.url} could not reach 127.0.0.1:" in lines[0]
    config_file.write_text(config_file.read_text() + f"hub:\n  fallback_endpoints: [{hub.endpoint}]\n")
    helped = await cli("pull", "acme/Behind:Q4_K_M")
    assert helped.code == 0, helped.err
    assert _all_through(hub)


async def test_socks_proxy_is_a_clear_usage_error(hub, cli, monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw@127.0.0.1:1080")
    result = await cli("pull", "acme/Anything:Q4_K_M")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "SOCKS" in lines[0] and "ALL_PROXY" in lines[0]
    assert "pw@" not in result.err


def test_manifest_records_the_origin(store):
    """(Documented field; the mirror tests check its value.)"""
    from gguf_tui.store.manifest import ManifestFile

    entry = ManifestFile.from_json({"path": "a.gguf", "size": 1, "sha256": "0" * 64, "origin": "x"})
    assert entry.origin == "x"
    assert json.loads(json.dumps(entry.__dict__))["origin"] == "x"
