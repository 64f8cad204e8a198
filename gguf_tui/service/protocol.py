"""The wire protocol between the engine service and its clients: newline-delimited JSON.

Every frame is one JSON object on one line with an "op":

  client -> service   {"op": "hello", "protocol": N, "version": "x.y.z"}
  service -> client   {"op": "hello", "protocol": N, "version": ..., "pid": ...}
                      or {"op": "error", "kind": "version"|"permission", "message": ...}, then EOF
  client -> service   {"op": "call", "id": K, "method": "pause", "args": {...}}
  service -> client   {"op": "result", "id": K, "value": ...}
                      or {"op": "result", "id": K, "error": {"kind": ..., "message": ...}}
  (after the call "subscribe" returned the snapshot)
  service -> client   {"op": "event", ...the event's to_json()...}
  service -> client   {"op": "bye", "message": ...} before the service closes a connection

The service answers calls in the order they arrive; events and results share the connection in
the order the service produced them, so a client sees the effect of its own call before its
result.
"""

from __future__ import annotations

import json

from gguf_tui import __version__

PROTOCOL = 1
MAX_FRAME = 4 * 1024 * 1024  # a snapshot of a very long queue still fits; anything longer is junk

# Methods a client may call, with the argument names each takes.
METHODS: dict[str, tuple[str, ...]] = {
    "enqueue": ("ref", "options", "hub"),
    "pause": ("job_id",),
    "resume": ("job_id",),
    "cancel": ("job_id",),
    "retry": ("job_id",),
    "move": ("job_id", "delta"),
    "remove": ("job_id",),
    "cancel_preview": ("job_id",),
    "job": ("job_id",),
    "pause_all": (),
    "snapshot": (),
    "subscribe": (),
    "status": (),
    "stop": (),
}


class ProtocolError(Exception):
    """A frame that is not valid JSON or not an object."""


def encode(frame: dict) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    try:
        frame = json.loads(line)
    except RecursionError:
        raise ProtocolError("not JSON: nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
        raise ProtocolError("not a frame")
    return frame


def hello(protocol: int = PROTOCOL, version: str = __version__) -> dict:
    return {"op": "hello", "protocol": protocol, "version": version}


def restart_hint(service_version: str, service_protocol: object) -> str:
    """The one line a client of another version shows."""
    return (
        f"the running engine service is gguf-tui {service_version} (protocol {service_protocol}) "
        f"but this is gguf-tui {__version__} (protocol {PROTOCOL}): restart it with "
        "'gguf-tui engine stop' (downloads pause and resume when it starts again), then retry"
    )
