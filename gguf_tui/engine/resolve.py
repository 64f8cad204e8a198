"""Turn a REF and the options of `pull` into a JobSpec, on the engine's side of the interface.

The service resolves REFs itself (with the asking client's Hub endpoint and token) so that a
client only ever sends a string; the in-process engine does the same, so both behave alike.
"""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from gguf_tui.engine.api import CommandError, ErrorKind, HubSettings, PullOptions
from gguf_tui.engine.spec import FileRequest, JobSpec
from gguf_tui.store.layout import UnsafePathError, safe_file_name
from gguf_tui.textsafe import plain, redact_url

if TYPE_CHECKING:
    import aiohttp

    from gguf_tui.config import Config


def check_options(options: PullOptions) -> None:
    """The checks `pull` makes on its options, for clients that skipped them."""
    if options.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", options.sha256):
        raise CommandError("--sha256 must be 64 hexadecimal characters", ErrorKind.USAGE)
    if options.connections is not None and not 1 <= options.connections <= 64:
        raise CommandError("--connections must be between 1 and 64", ErrorKind.USAGE)
    if options.max_rate is not None and options.max_rate < 1024:
        raise CommandError("--max-rate below 1 KiB/s makes no sense", ErrorKind.USAGE)


def is_plain_url(ref: str, endpoint: str) -> bool:
    """An http(s) URL that is not a Hub page or resolve URL (those go through the Hub client)."""
    if not ref.startswith(("http://", "https://")):
        return False
    from gguf_tui.hub.refs import is_hub_ref

    return not is_hub_ref(ref, endpoint)


def url_spec(url: str, options: PullOptions) -> JobSpec:
    parts = urlsplit(url)
    if not parts.hostname:
        raise CommandError(f"not a valid URL: {redact_url(url)}", ErrorKind.USAGE)
    base = PurePosixPath(unquote(parts.path)).name or "download.gguf"
    try:
        file_name = safe_file_name(options.name or base)
    except UnsafePathError as exc:
        raise CommandError(str(exc), ErrorKind.REFUSED) from None
    if options.name and not file_name.endswith(".gguf"):
        file_name += ".gguf"
    model_name = options.name or file_name.removesuffix(".gguf")
    sha256 = options.sha256.lower() if options.sha256 else None
    request = FileRequest(
        url=url, dest=file_name, expected_sha256=sha256, sha256_origin="user" if sha256 else None
    )
    return JobSpec(name=model_name, files=[request], source={"kind": "url", "url": redact_url(url)})


def _client_routes(hub: HubSettings):
    """The asking client's proxy routes, or None (the engine's own); a setting the engine
    cannot use is the client's usage error."""
    if hub.proxy is None:
        return None
    from gguf_tui.proxies import ProxyRoutes, ProxySettingError

    try:
        return ProxyRoutes.from_client(hub.proxy)
    except ProxySettingError as exc:
        raise CommandError(str(exc), ErrorKind.USAGE) from None


async def resolve_spec(
    ref: str,
    options: PullOptions,
    hub: HubSettings,
    config: Config,
    session: aiohttp.ClientSession,
) -> JobSpec:
    """One JobSpec for REF; CommandError with one line when it cannot be resolved."""
    check_options(options)
    routes = _client_routes(hub)
    if hub.endpoint:
        config = copy.deepcopy(config)
        config.hub.endpoint = hub.endpoint.rstrip("/")
    if is_plain_url(ref, config.hub.endpoint):
        spec = url_spec(ref, options)
        spec.proxy_routes = routes
        return spec
    from gguf_tui.hub import HubError, resolve_ref
    from gguf_tui.proxy_middleware import routed

    try:
        # The client's token (None: it has none) and proxy settings are used for this resolve
        # and this job only.
        with routed(routes):
            spec = await resolve_ref(
                ref, config, session, no_mmproj=options.no_mmproj, token=hub.token
            )
    except HubError as exc:
        raise CommandError(plain(str(exc)), ErrorKind.REFUSED) from None
    except ValueError as exc:
        raise CommandError(plain(str(exc)), ErrorKind.USAGE) from None
    spec.proxy_routes = routes
    if options.name:
        spec.name = options.name
    if options.sha256:
        if len(spec.files) != 1:
            raise CommandError("--sha256 applies to a single file, but REF has several", ErrorKind.USAGE)
        spec.files[0].expected_sha256 = options.sha256.lower()
        spec.files[0].sha256_origin = "user"  # "verified" against the user's hash, not a Hub's
    return spec
