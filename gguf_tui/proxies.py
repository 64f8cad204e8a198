"""Which HTTP proxy each request goes through (settings only: no aiohttp, so loading the config
stays light; the middleware that applies them is gguf_tui.proxy_middleware).

`network.proxy` (a URL, or "none") wins over the environment; otherwise HTTPS_PROXY (https
targets), HTTP_PROXY (http targets) and ALL_PROXY (both, when the specific one is unset) are
read, lower-case spelling first as curl and urllib do. `network.no_proxy`, else NO_PROXY, lists
hosts reached directly. The choice is made per request by a client middleware installed on every
session we create (Hub API, remote headers, downloads), so a redirect from the Hub to a CDN on
another host is routed by that host's own rule, and a byte range rides the same proxy as the
rest of its file. Proxy credentials travel only as Proxy-Authorization to the proxy and are
never shown: messages name the proxy as scheme://host:port.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from gguf_tui.textsafe import plain

NO_PROXY_VALUES = ("", "none")  # network.proxy values that mean "connect directly"
_SCHEMES = ("http", "https")


class ProxySettingError(ValueError):
    """A proxy setting that cannot be used (a socks:// URL, no host); one line, exit 2."""


@dataclass(frozen=True)
class Proxy:
    """One proxy: its URL without credentials (safe to show), and the credentials apart."""

    url: str
    setting: str  # where it was configured, for messages: "network.proxy", "HTTPS_PROXY"...
    credentials: tuple[str, str] | None = field(default=None, repr=False)  # (user, password)

    @classmethod
    def parse(cls, value: str, setting: str) -> Proxy:
        """A proxy URL as users write it (`host:3128` means http://host:3128)."""
        text = value.strip()
        if "://" not in text:
            text = f"http://{text}"
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ProxySettingError(f"{setting}: not a valid proxy URL") from None
        scheme = parts.scheme.lower()
        if scheme.startswith("socks"):
            raise ProxySettingError(
                f"{setting}: SOCKS proxies ({scheme}://) are not supported; use an HTTP proxy "
                "(http://HOST:PORT), e.g. squid, or unset it for gguf-tui"
            )
        if scheme not in _SCHEMES or not parts.hostname:
            raise ProxySettingError(
                f"{setting}: expected a proxy URL like http://HOST:PORT, "
                f"got {plain(_shown(parts))!r}"
            )
        credentials = None
        if parts.username is not None or parts.password is not None:
            credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        shown = f"{scheme}://{host}" + (f":{port}" if port else "")
        return cls(url=shown, setting=setting, credentials=credentials)


def _shown(parts: Any) -> str:
    """scheme://host[:port] of a split URL, whatever credentials it held."""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


@dataclass(frozen=True)
class ProxyRoutes:
    """The proxy for http and https targets, and the hosts that bypass it."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls,
        proxy: str | None = None,
        no_proxy: list[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ProxyRoutes:
        """Routes from `network.proxy` / `network.no_proxy` (None: unset) and the environment."""
        env = os.environ if environ is None else environ
        if proxy is not None:
            if proxy.strip().lower() in NO_PROXY_VALUES:
                return cls()
            chosen = Proxy.parse(proxy, "network.proxy")
            http = https = chosen
        else:
            fallback = _env_proxy(env, "all_proxy")
            http = _env_proxy(env, "http_proxy") or fallback
            https = _env_proxy(env, "https_proxy") or fallback
        if no_proxy is not None:
            bypass = tuple(no_proxy)
        else:
            text = _env_value(env, "no_proxy")[1] or ""
            bypass = tuple(part for part in text.split(",") if part.strip())
        return cls(http=http, https=https, no_proxy=bypass)

    @classmethod
    def from_client(cls, settings: Mapping[str, Any]) -> ProxyRoutes:
        """Routes from a client's `client_settings` (what the service uses for its jobs)."""
        env = settings.get("env")
        no_proxy = settings.get("no_proxy")
        return cls.from_settings(
            settings.get("proxy") if isinstance(settings.get("proxy"), str) else None,
            [str(v) for v in no_proxy] if isinstance(no_proxy, list) else None,
            {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
        )

    @classmethod
    def from_config(cls, config: Any, environ: Mapping[str, str] | None = None) -> ProxyRoutes:
        network = getattr(config, "network", None)
        return cls.from_settings(
            getattr(network, "proxy", None), getattr(network, "no_proxy", None), environ
        )

    def for_target(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        """The proxy a request to scheme://host:port goes through, or None for direct."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or bypasses(host, port, self.no_proxy):
            return None
        return proxy

    def for_url(self, url: str) -> Proxy | None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        return self.for_target(scheme, parts.hostname or "", port)

    def describe(self) -> str:
        """One line for `--debug` output and docs: which proxy serves what (no credentials)."""
        if self.http is None and self.https is None:
            return "direct (no proxy)"
        parts = []
        for name, proxy in (("http", self.http), ("https", self.https)):
            parts.append(f"{name}: {proxy.url} ({proxy.setting})" if proxy else f"{name}: direct")
        if self.no_proxy:
            parts.append(f"no_proxy: {','.join(self.no_proxy)}")
        return "; ".join(parts)


def _env_value(env: Mapping[str, str], lower: str) -> tuple[str, str | None]:
    for name in (lower, lower.upper()):
        value = env.get(name)
        if value is not None and value.strip():
            return name, value
    return lower.upper(), None


def _env_proxy(env: Mapping[str, str], lower: str) -> Proxy | None:
    name, value = _env_value(env, lower)
    return Proxy.parse(value, name) if value is not None else None


def bypasses(host: str, port: int | None, entries: tuple[str, ...] | list[str]) -> bool:
    """Whether NO_PROXY `entries` send `host` direct: `*`, a name (suffix match on dots, a
    leading `.` or `*.` allowed), an IP address or CIDR range, each with an optional `:port`."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            name_part, _, port_part = entry.rpartition(":")
            if port_part.isdigit():
                entry, entry_port = name_part, int(port_part)
        if entry_port is not None and entry_port != port:
            continue
        entry = entry.strip("[]")
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


PROXY_VARIABLES = tuple(
    name for lower in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for name in (lower, lower.upper())
)


def client_settings(config: Any, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """This client's proxy settings as sent to the engine service with each pull (over the
    private socket, like the token): the service uses them for that job, so a proxy set in the
    shell that runs `pull` counts even when the service was started from another shell."""
    env = os.environ if environ is None else environ
    network = getattr(config, "network", None)
    return {
        "proxy": getattr(network, "proxy", None),
        "no_proxy": getattr(network, "no_proxy", None),
        "env": {name: env[name] for name in PROXY_VARIABLES if env.get(name)},
    }
