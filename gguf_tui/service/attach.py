"""`open_engine`: the one place a client chooses between the service and an in-process engine."""

from __future__ import annotations

from gguf_tui.config import Config
from gguf_tui.engine.api import EngineAPI
from gguf_tui.service.spawn import connect_or_start


async def open_engine(
    config: Config,
    *,
    local: bool | None = None,
    restore: bool = False,
    connections: int | None = None,
    max_rate: int | None = None,
) -> EngineAPI:
    """The engine a client talks to: the service (started on demand), or with `--local` /
    `engine.mode: local` one in this process (started; `restore` brings earlier jobs back,
    paused). `connections` and `max_rate` shape a local engine; over the service they travel
    with each enqueue (PullOptions). `close()` detaches from the service, or stops (pausing)
    the local engine."""
    if local is None:
        local = config.engine.mode == "local"
    if not local:
        return await connect_or_start(config)
    from gguf_tui.engine.local import LocalEngine
    from gguf_tui.service.server import _service_auth

    engine = LocalEngine(
        config,
        restore=restore,
        connections=connections,
        max_rate=max_rate,
        auth_headers_for=_service_auth(config),
    )
    await engine.start()
    return engine
