"""Which proxy a request takes: network.proxy over the environment, *_PROXY per scheme, NO_PROXY."""

from __future__ import annotations

import pytest

from gguf_tui.config import ConfigError, load_config
from gguf_tui.proxies import Proxy, ProxyRoutes, ProxySettingError, bypasses


def routes(env: dict[str, str], proxy: str | None = None, no_proxy: list[str] | None = None):
    return ProxyRoutes.from_settings(proxy, no_proxy, env)


def test_scheme_specific_variables_then_all_proxy():
    env = {"HTTPS_PROXY": "http://s:1", "HTTP_PROXY": "http://p:2", "ALL_PROXY": "http://a:3"}
    chosen = routes(env)
    assert chosen.for_url("https://huggingface.co/x").url == "http://s:1"
    assert chosen.for_url("http://mirror/x").url == "http://p:2"
    only_all = routes({"ALL_PROXY": "http://a:3"})
    assert only_all.for_url("https://h/x").url == only_all.for_url("http://h/x").url == "http://a:3"
    assert only_all.for_url("https://h/x").setting == "ALL_PROXY"


def test_lower_case_names_win_and_a_bare_host_means_http():
    chosen = routes({"https_proxy": "proxy.lan:3128", "HTTPS_PROXY": "http://other:1"})
    assert chosen.for_url("https://h/").url == "http://proxy.lan:3128"
    assert chosen.for_url("https://h/").setting == "https_proxy"
    assert routes({}).for_url("https://h/") is None


def test_network_proxy_wins_and_none_turns_the_environment_off():
    env = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"}
    assert routes(env, proxy="none").for_url("https://h/") is None
    configured = routes(env, proxy="http://cfg:8080", no_proxy=[])
    assert configured.for_url("https://h/").url == "http://cfg:8080"
    assert configured.for_url("https://h/").setting == "network.proxy"


def test_credentials_are_kept_apart_and_never_shown():
    proxy = Proxy.parse("http://al%40ice:p%3Ass@proxy:3128", "HTTP_PROXY")
    assert proxy.url == "http://proxy:3128"
    assert proxy.credentials == ("al@ice", "p:ss")
    assert "p:ss" not in repr(proxy) and "p%3Ass" not in repr(proxy)
    assert "p:ss" not in routes({"HTTP_PROXY": "http://u:p:ss@x:1"}).describe()


@pytest.mark.parametrize("value", ["socks5://h:1080", "socks5h://u:secretpw@h:1080", "socks4://h:1"])
def test_socks_is_refused_by_name(value):
    with pytest.raises(ProxySettingError) as caught:
        routes({"ALL_PROXY": value})
    assert "SOCKS" in str(caught.value) and "ALL_PROXY" in str(caught.value)
    assert "secretpw" not in str(caught.value)


@pytest.mark.parametrize(
    "host, port, entries, direct",
    [
        ("huggingface.co", 443, ["huggingface.co"], True),
        ("cdn-lfs.huggingface.co", 443, [".huggingface.co"], True),
        ("cdn-lfs.huggingface.co", 443, ["*.huggingface.co"], True),
        ("cdn-lfs.huggingface.co", 443, ["huggingface.co"], True),
        ("nothuggingface.co", 443, ["huggingface.co"], False),
        ("10.1.2.3", 80, ["10.0.0.0/8"], True),
        ("11.1.2.3", 80, ["10.0.0.0/8"], False),
        ("127.0.0.1", 8080, ["127.0.0.1:9090"], False),
        ("127.0.0.1", 9090, ["127.0.0.1:9090"], True),
        ("::1", 80, ["::1"], True),
        ("mirror.lan", 80, ["*"], True),
        ("mirror.lan", 80, ["", " "], False),
    ],
)
def test_no_proxy_entries(host, port, entries, direct):
    assert bypasses(host, port, entries) is direct


def test_no_proxy_from_config_replaces_the_environment():
    env = {"HTTP_PROXY": "http://p:1", "NO_PROXY": "mirror.lan"}
    assert routes(env).for_url("http://mirror.lan/x") is None
    assert routes(env, no_proxy=["other"]).for_url("http://mirror.lan/x").url == "http://p:1"


def test_config_keys_are_validated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("network:\n  proxy: socks5://h:1\n")
    with pytest.raises(ConfigError, match=r"network.proxy.*SOCKS"):
        load_config(path, environ={})
    path.write_text("network:\n  proxy: off\n  no_proxy: a.lan, .b.lan\nhub:\n  fallback_endpoints: [http://m:1/]\n")
    config = load_config(path, environ={})
    assert config.network.proxy == "none"
    assert config.network.no_proxy == ["a.lan", ".b.lan"]
    assert config.hub.fallback_endpoints == ["http://m:1"]
    path.write_text("hub:\n  fallback_endpoints: [ftp://m]\n")
    with pytest.raises(ConfigError, match="hub.fallback_endpoints"):
        load_config(path, environ={})


def test_a_bad_proxy_variable_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("{}\n")
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        load_config(path, environ={"HTTPS_PROXY": "socks5://h:1"})
    # network.proxy set: the environment's value is not used, so it is not an error either.
    path.write_text("network:\n  proxy: none\n")
    load_config(path, environ={"HTTPS_PROXY": "socks5://h:1"})
