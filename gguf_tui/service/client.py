"""`ServiceClient`: the engine interface (engine/api.py) over the service's Unix socket."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from typing import AsyncIterator

from gguf_tui import __version__
from gguf_tui.engine.api import (
    CancelPreview,
    CommandError,
    EngineEvent,
    ErrorKind,
    HubSettings,
    JobView,
    PullOptions,
    Snapshot,
    event_from_json,
)
from gguf_tui.service.paths import ServicePaths
from gguf_tui.service.protocol import MAX_FRAME, PROTOCOL, ProtocolError, decode, encode, hello


class ServiceError(Exception):
    """The service cannot be reached or used: one line for the user."""


class ServiceNotRunning(ServiceError):
    """Nothing answers on the socket (no file, or a stale one left by a killed service)."""


class VersionMismatch(ServiceError):
    """The service runs another version; `pid` is its process, for `engine stop`."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class ServiceRefused(ServiceError):
    """The service refused this client (another user's service)."""


class ServiceGone(ServiceError):
    """The connection to the service ended (it stopped, was killed, or dropped this client)."""


class ClientSubscription:
    """The snapshot given on attach, then the events in order until the connection ends."""

    def __init__(self, client: ServiceClient, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._client = client

    async def __aiter__(self) -> AsyncIterator[EngineEvent]:
        queue = self._client._events
        while True:
            event = await queue.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        await self._client.close()


class ServiceClient:
    """One connection to the engine service; calls are answered in order.

    `bye_message` says why the service ended the connection, once it has."""

    def __init__(self, paths: ServicePaths, *, protocol: int = PROTOCOL, version: str = __version__) -> None:
        self.paths = paths
        self.service_pid: int | None = None
        self.bye_message = ""
        self._protocol = protocol
        self._version = version
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._events: asyncio.Queue[EngineEvent | None] = asyncio.Queue()
        self._subscribed = False
        self._read_task: asyncio.Task | None = None
        self._closed = False

    # ---- connecting --------------------------------------------------------------------------

    async def connect(self) -> ServiceClient:
        """Attach: connect, check the service is this user's, and exchange hellos."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self.paths.socket), limit=MAX_FRAME
            )
        except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError) as exc:
            raise ServiceNotRunning(f"no engine service answers on {self.paths.socket}") from exc
        except OSError as exc:
            raise ServiceError(f"cannot reach the engine service at {self.paths.socket}: {exc.strerror}") from None
        sock = self._writer.get_extra_info("socket")
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        peer_uid = int.from_bytes(raw[4:8], "little", signed=True)
        if peer_uid != os.getuid():
            self._writer.close()
            raise ServiceRefused(
                f"the process on {self.paths.socket} runs as uid {peer_uid}, not you: "
                "refusing to talk to it; remove the socket"
            )
        try:
            self._writer.write(encode(hello(self._protocol, self._version)))
            line = await asyncio.wait_for(self._reader.readline(), 15)
        except ConnectionError:
            line = b""
        if not line:
            # Accepted and then closed: a service that is dying (killed, stopping). A new one
            # can take its place.
            self._writer.close()
            raise ServiceNotRunning(f"the engine service on {self.paths.socket} is going away")
        try:
            answer = decode(line)
        except (ProtocolError, asyncio.TimeoutError) as exc:
            self._writer.close()
            raise ServiceError(f"the engine service did not say hello ({exc or 'no answer'})") from None
        if answer.get("op") == "error":
            self._writer.close()
            message = str(answer.get("message") or "the engine service refused this client")
            if answer.get("kind") == "version":
                raise VersionMismatch(message, answer.get("pid"))
            raise ServiceRefused(message)
        self.service_pid = answer.get("pid")
        self._read_task = asyncio.ensure_future(self._read_loop())
        return self

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    frame = decode(line)
                except ProtocolError:
                    continue
                op = frame["op"]
                if op == "event":
                    del frame["op"]
                    try:
                        self._events.put_nowait(event_from_json(frame))
                    except ValueError:
                        continue  # an event type from a newer service: skip it
                elif op == "result":
                    future = self._pending.pop(frame.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                elif op == "bye":
                    self.bye_message = str(frame.get("message") or "")
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            self._ended()

    def _ended(self) -> None:
        message = self.bye_message or "the connection to the engine service ended"
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ServiceGone(message))
        self._pending.clear()
        self._events.put_nowait(None)

    async def call(self, method: str, **args):
        """Send one call and wait for its result; CommandError when the engine refused it."""
        if self._writer is None or self._read_task is None or self._read_task.done():
            raise ServiceGone(self.bye_message or "not connected to the engine service")
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            self._writer.write(encode({"op": "call", "id": call_id, "method": method, "args": args}))
            await self._writer.drain()
        except (ConnectionError, OSError):
            pass  # the read loop sees the end and fails the future
        frame = await future
        if "error" in frame:
            error = frame["error"] or {}
            try:
                kind = ErrorKind(error.get("kind"))
            except ValueError:
                kind = ErrorKind.FAILED
            raise CommandError(str(error.get("message") or "the engine refused"), kind)
        return frame.get("value")

    async def close(self) -> None:
        """Detach; downloads go on in the service."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        if self._read_task is not None:
            await asyncio.wait([self._read_task], timeout=2)

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # ---- the engine interface ----------------------------------------------------------------

    async def enqueue(
        self, ref: str, options: PullOptions = PullOptions(), hub: HubSettings = HubSettings()
    ) -> int:
        return int(await self.call("enqueue", ref=ref, options=options.to_json(), hub=hub.to_json()))

    async def pause(self, job_id: int) -> None:
        await self.call("pause", job_id=job_id)

    async def resume(self, job_id: int) -> None:
        await self.call("resume", job_id=job_id)

    async def cancel(self, job_id: int) -> None:
        await self.call("cancel", job_id=job_id)

    async def retry(self, job_id: int) -> None:
        await self.call("retry", job_id=job_id)

    async def move(self, job_id: int, delta: int) -> None:
        await self.call("move", job_id=job_id, delta=delta)

    async def remove(self, job_id: int) -> None:
        await self.call("remove", job_id=job_id)

    async def cancel_preview(self, job_id: int) -> CancelPreview:
        return CancelPreview.from_json(await self.call("cancel_preview", job_id=job_id))

    async def job(self, job_id: int) -> JobView:
        return JobView.from_json(await self.call("job", job_id=job_id))

    async def pause_all(self) -> list[int]:
        return [int(job_id) for job_id in await self.call("pause_all")]

    async def snapshot(self) -> Snapshot:
        return Snapshot.from_json(await self.call("snapshot"))

    async def subscribe(self) -> ClientSubscription:
        """The snapshot and then the events; one subscription per connection."""
        if self._subscribed:
            raise ServiceError("this connection is already subscribed; open another")
        self._subscribed = True
        return ClientSubscription(self, Snapshot.from_json(await self.call("subscribe")))

    async def status(self) -> dict:
        """The service's pid, version, store, socket, log, clients and job counts."""
        return await self.call("status")

    async def stop(self) -> None:
        """Ask the service to pause and save everything and exit; returns once it has."""
        await self.call("stop")
        if self._read_task is not None:
            await asyncio.wait([self._read_task], timeout=60)
