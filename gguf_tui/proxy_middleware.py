"""An aiohttp client middleware that routes every request through its proxy (gguf_tui.proxies)
and turns a proxy's refusal into one line that names the proxy, never its credentials.

Installed on every session we create (Hub API, remote headers, downloads), so a redirect from
the Hub to a CDN on another host is routed by that host's own rule, and each byte range rides
the same proxy as the rest of its file.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import aiohttp
from yarl import URL

from gguf_tui.proxies import Proxy, ProxyRoutes
from gguf_tui.textsafe import plain



class ProxyError(aiohttp.ClientError):
    """A proxy refused or failed a request; `str()` is one line naming the proxy, no secrets.

    `fatal` says that asking again cannot help (wrong credentials, a rule that denies the host).
    """

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


_Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
# Routes that win over the session's own for the current task and the tasks it starts: the
# service resolves and downloads a client's job with that client's proxy settings.
_task_routes: ContextVar[ProxyRoutes | None] = ContextVar("gguf_tui_task_routes", default=None)


def use_routes(routes: ProxyRoutes | None) -> None:
    """Route this task's requests (and those of the tasks it starts) by `routes` (None: leave
    the session's). For a task's whole life, e.g. a job's."""
    if routes is not None:
        _task_routes.set(routes)


@contextmanager
def routed(routes: ProxyRoutes | None) -> Iterator[None]:
    """`use_routes` for a block only."""
    token = _task_routes.set(routes) if routes is not None else None
    try:
        yield
    finally:
        if token is not None:
            _task_routes.reset(token)


def made_by_proxy(headers: object) -> bool:
    """Whether an error answer is the proxy's own (squid's `X-Squid-Error`, or an RFC 9209
    `Proxy-Status` with an `error=`), not the origin's forwarded by it."""
    get = getattr(headers, "get", None)
    if get is None:
        return False
    return get("X-Squid-Error") is not None or "error=" in (get("Proxy-Status") or "")


def proxy_middleware(routes: ProxyRoutes):
    """An aiohttp client middleware that routes each request by `routes` and turns a proxy's
    refusal into a ProxyError."""

    async def route(request: aiohttp.ClientRequest, handler: _Handler) -> aiohttp.ClientResponse:
        url = request.url
        active = _task_routes.get() or routes
        proxy = active.for_target(url.scheme, url.host or "", url.port)
        if proxy is None:
            return await handler(request)
        credentials = _proxy_authorization(proxy)
        if credentials is None:
            request.update_proxy(URL(proxy.url), None, None)
        elif url.scheme == "https":  # tunnelled: the credentials go with the CONNECT only
            request.update_proxy(URL(proxy.url), None, {"Proxy-Authorization": credentials})
        else:  # forwarded: the proxy reads them off the request (and drops them)
            request.update_proxy(URL(proxy.url), None, None)
            request.headers["Proxy-Authorization"] = credentials
        target = f"{request.url.host}:{request.url.port}"
        try:
            response = await handler(request)
        except aiohttp.ClientProxyConnectionError as exc:
            error = exc.os_error
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise unreachable(proxy, reason.lower()) from None
        except aiohttp.ClientHttpProxyError as exc:  # the answer to CONNECT (https targets)
            raise refusal(proxy, exc.status, exc.message, target) from None
        except aiohttp.ConnectionTimeoutError:
            raise unreachable(proxy, "timed out") from None
        if response.status == 407 or (
            response.status in (403, 502, 503, 504) and made_by_proxy(response.headers)
        ):
            status, reason = response.status, response.reason or ""
            response.release()
            raise refusal(proxy, status, reason, target)
        return response

    return route


def _proxy_authorization(proxy: Proxy) -> str | None:
    if proxy.credentials is None:
        return None
    user, password = proxy.credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def unreachable(proxy: Proxy, reason: str) -> ProxyError:
    return ProxyError(
        f"cannot connect to the proxy {proxy.url} ({plain(reason)}): check that it runs and "
        f"that {proxy.setting} names it",
        fatal=False,
    )


def refusal(proxy: Proxy, status: int, reason: str, target: str) -> ProxyError:
    """A proxy's own error answer: 407 (credentials), 403 (its rules), 5xx (cannot reach)."""
    said = f"HTTP {status} {plain(reason)[:60]}".strip()
    if status == 407:
        if proxy.credentials is None:
            what = f"needs a user and password ({said}): give them in {proxy.setting} as " \
                   "http://USER:PASSWORD@HOST:PORT"
        else:
            what = f"refused the user and password ({said}): fix them in {proxy.setting}"
        return ProxyError(f"the proxy {proxy.url} {what}", fatal=True)
    if 400 <= status < 500:
        return ProxyError(
            f"the proxy {proxy.url} refused the connection to {plain(target)} ({said}): check "
            "its access rules, or list the host in network.no_proxy / NO_PROXY",
            fatal=True,
        )
    return ProxyError(
        f"the proxy {proxy.url} could not reach {plain(target)} ({said})", fatal=False
    )
