"""How a command reaches the engine: the per-user service (started on demand) or, with
`--local` / `engine.mode: local`, an engine inside this process. Only `engine.api` crosses."""

from __future__ import annotations

import argparse

from gguf_tui.config import Config
from gguf_tui.engine.api import EngineAPI, HubSettings


class EngineUnavailable(Exception):
    """The engine service cannot be started or used: one line for the user (exit 1)."""


def wants_local(args: argparse.Namespace, config: Config) -> bool:
    """`--local`, or `engine.mode: local` in the config."""
    return bool(getattr(args, "local", False)) or config.engine.mode == "local"


def hub_settings(config: Config) -> HubSettings:
    """This client's Hub endpoint, token and proxy settings; the service resolves REFs and
    downloads them with these."""
    return HubSettings.of_client(config)


def _unavailable(exc: Exception) -> EngineUnavailable:
    text = str(exc).removeprefix("gguf-tui: ")
    return EngineUnavailable(f"{text} (or run with --local to download in this process)")


async def open_engine_for(
    config: Config, *, local: bool, connections: int | None = None, max_rate: int | None = None
) -> EngineAPI:
    """The engine to talk to; EngineUnavailable with one line when the service cannot be had."""
    from gguf_tui.service.attach import open_engine
    from gguf_tui.service.client import ServiceError

    try:
        return await open_engine(config, local=local, connections=connections, max_rate=max_rate)
    except ServiceError as exc:
        raise _unavailable(exc) from None


async def running_service(config: Config) -> EngineAPI | None:
    """The service for this store when one answers (none is started); EngineUnavailable when
    one is there but cannot be used (another version, another user)."""
    from gguf_tui.service.client import ServiceClient, ServiceError, ServiceNotRunning
    from gguf_tui.service.paths import service_paths

    try:
        return await ServiceClient(service_paths(config.store)).connect()
    except ServiceNotRunning:
        return None
    except ServiceError as exc:
        raise EngineUnavailable(str(exc)) from None
