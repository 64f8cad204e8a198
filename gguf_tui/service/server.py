"""The engine service: one `LocalEngine` per user and store root, served on a Unix socket.

Clients attach, send calls, receive a snapshot and then every event; downloads go on when they
detach. The service pauses and saves everything on SIGTERM or `engine stop` and exits 0, and
exits by itself after `engine.idle_exit` with nothing to do and nobody attached.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import struct
import sys
import time

from gguf_tui import __version__
from gguf_tui.config import Config
from gguf_tui.engine.api import CommandError, ErrorKind, HubSettings, PullOptions
from gguf_tui.engine.events import EngineEvent, StateChanged
from gguf_tui.engine.local import LocalEngine
from gguf_tui.engine.priority import lower_priority
from gguf_tui.service.log import open_log, scrub
from gguf_tui.service.outbox import DEFAULT_LIMIT, Outbox
from gguf_tui.service.paths import ServicePaths, ensure_runtime_dir, service_paths
from gguf_tui.service.protocol import (
    MAX_FRAME,
    METHODS,
    PROTOCOL,
    ProtocolError,
    decode,
    encode,
    restart_hint,
)

HELLO_TIMEOUT = 10.0
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


class AlreadyRunning(Exception):
    """Another service holds this store's lock."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return _PEERCRED.unpack(raw)


class ClientConnection:
    """One attached client: its reader loop, its bounded outbox and the task that writes it."""

    def __init__(
        self,
        service: EngineService,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pid: int,
        number: int,
    ) -> None:
        self.service = service
        self.reader = reader
        self.writer = writer
        self.pid = pid
        self.number = number
        self.subscribed = False
        self.closed = False
        self.outbox = Outbox(self._overflowed, service.client_queue_limit)
        self._writer_task: asyncio.Task | None = None

    def describe(self) -> str:
        return f"client {self.number} (pid {self.pid})"

    def start_writer(self) -> None:
        self._writer_task = asyncio.ensure_future(self._write_loop())

    async def _write_loop(self) -> None:
        try:
            while True:
                self.writer.write(await self.outbox.next_batch())
                await self.writer.drain()
        except (ConnectionError, OSError):
            self.close()
        except asyncio.CancelledError:
            pass

    def _overflowed(self) -> None:
        self.service.log.warning(
            "%s fell %d frames behind: dropped (it can attach again)",
            self.describe(),
            self.outbox.limit,
        )
        self.close()

    def deliver(self, event: EngineEvent) -> None:
        if self.subscribed and not self.closed:
            self.outbox.put_event(event)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.service.clients.discard(self)
        self.service.last_activity = time.monotonic()
        if self._writer_task is not None and self._writer_task is not asyncio.current_task():
            self._writer_task.cancel()
        self.writer.transport.abort()

    async def say_bye(self, message: str) -> None:
        """Send what is queued plus a goodbye, then close."""
        if self.closed:
            return
        if self._writer_task is not None:
            self._writer_task.cancel()
        try:
            pending = b"" if not len(self.outbox) else await self.outbox.next_batch()
            self.writer.write(pending + encode({"op": "bye", "message": message}))
            await asyncio.wait_for(self.writer.drain(), 1.0)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        self.close()


class EngineService:
    def __init__(
        self,
        config: Config,
        paths: ServicePaths | None = None,
        *,
        client_queue_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.config = config
        self.paths = paths or service_paths(config.store)
        self.idle_exit = config.engine.idle_exit
        self.client_queue_limit = client_queue_limit
        self.clients: set[ClientConnection] = set()
        self.log = logging.getLogger("gguf_tui.service")
        self.engine: LocalEngine | None = None
        self.started_at = time.time()
        self.last_activity = time.monotonic()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._lock_fd: int | None = None
        self._client_numbers = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    def _take_lock(self) -> None:
        """One service per user and store: an exclusive flock beside the socket."""
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(f"an engine service for {self.config.store} is already running") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _listen_socket(self) -> socket.socket:
        """Bind the socket 0600; any socket file there is stale, since we hold the lock."""
        try:
            os.unlink(self.paths.socket)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.paths.socket))
        finally:
            os.umask(old_umask)
        os.chmod(self.paths.socket, 0o600)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    async def serve(self, *, on_ready=None) -> int:
        """Run until stopped or idle; 0 when it stopped cleanly."""
        ensure_runtime_dir(self.paths)
        self.log = open_log(self.paths.log)
        self._take_lock()
        for problem in lower_priority(self.config.engine.nice, self.config.engine.ionice):
            self.log.warning("could not lower the download priority: %s", problem)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, f"signal {signal.Signals(signum).name}")
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # no terminal to lose
        self.engine = LocalEngine(
            self.config,
            restore=True,
            resume_interrupted=True,
            auth_headers_for=_service_auth(self.config),
        )
        self.engine.add_listener(self._on_event)
        restored = await self.engine.start()
        server = await asyncio.start_unix_server(
            self._handle_client, sock=self._listen_socket(), limit=MAX_FRAME
        )
        self.log.info(
            "engine service %s started: pid %d, store %s, %d job(s) restored",
            __version__, os.getpid(), self.config.store, len(restored),
        )  # fmt: skip
        if on_ready is not None:
            on_ready()
        watcher = asyncio.ensure_future(self._watch_idle())
        try:
            await self._stop.wait()
        finally:
            watcher.cancel()
            server.close()
            self.log.info("stopping: %s", self._stop_reason)
            await self.engine.close()  # pauses every download and saves its resume state
            for client in list(self.clients):
                await client.say_bye(f"the engine service stopped ({self._stop_reason})")
            try:
                os.unlink(self.paths.socket)
            except FileNotFoundError:
                pass
            self.log.info("stopped")
            if self._lock_fd is not None:
                os.close(self._lock_fd)
        return 0

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def _watch_idle(self) -> None:
        if not self.idle_exit:
            return
        step = min(1.0, self.idle_exit / 4)
        while True:
            await asyncio.sleep(step)
            assert self.engine is not None
            if self.clients or self.engine.active_count():
                self.last_activity = time.monotonic()
            elif time.monotonic() - self.last_activity >= self.idle_exit:
                self.request_stop(f"idle for {self.idle_exit:g} s")
                return

    # ---- events out --------------------------------------------------------------------------

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, StateChanged):
            self.log.info(
                "job %d %s: %s%s%s", event.job_id, event.name, event.state.value,
                f" ({event.reason.value})" if event.reason.value else "",
                f": {event.message}" if event.message else "",
            )  # fmt: skip
        for client in list(self.clients):
            client.deliver(event)
        if isinstance(event, StateChanged) and self.engine is not None and not self.engine.active_count():
            # The last download ended: hand the heap its transfer buffers left behind back to
            # the system, so an idle service stays small (glibc keeps freed arenas otherwise).
            asyncio.get_running_loop().call_later(1.0, self._release_memory)

    def _release_memory(self) -> None:
        if self.engine is not None and not self.engine.active_count():
            release_free_heap()

    # ---- one client --------------------------------------------------------------------------

    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        pid, uid, _gid = peer_credentials(sock)
        if uid != os.getuid():
            self.log.warning("refused a connection from uid %d (pid %d)", uid, pid)
            await _refuse(
                reader,
                writer,
                "permission",
                f"refused: this engine service belongs to uid {os.getuid()}; "
                "each user runs their own (start gguf-tui as yourself)",
            )
            return
        self._client_numbers += 1
        client = ClientConnection(self, reader, writer, pid, self._client_numbers)
        try:
            if not await self._hello(client):
                return
            self.clients.add(client)
            client.start_writer()
            self.log.info("%s attached", client.describe())
            await self._read_calls(client)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            if not client.closed:
                self.log.info("%s detached", client.describe())
            client.close()

    async def _hello(self, client: ClientConnection) -> bool:
        try:
            line = await asyncio.wait_for(client.reader.readline(), HELLO_TIMEOUT)
            frame = decode(line)
        except (asyncio.TimeoutError, ProtocolError):
            await _refuse(client.reader, client.writer, "protocol", "expected a hello frame")
            return False
        if frame.get("op") != "hello" or frame.get("protocol") != PROTOCOL or frame.get("version") != __version__:
            self.log.warning(
                "refused %s: version %s protocol %s", client.describe(),
                scrub(str(frame.get("version"))), scrub(str(frame.get("protocol"))),
            )  # fmt: skip
            await _refuse(
                client.reader,
                client.writer,
                "version",
                restart_hint(__version__, PROTOCOL),
                version=__version__,
                protocol=PROTOCOL,
                pid=os.getpid(),
            )
            return False
        client.writer.write(
            encode({"op": "hello", "protocol": PROTOCOL, "version": __version__, "pid": os.getpid()})
        )
        await client.writer.drain()
        return True

    async def _read_calls(self, client: ClientConnection) -> None:
        while not client.closed:
            line = await client.reader.readline()
            if not line:
                return
            try:
                frame = decode(line)
            except ProtocolError as exc:
                client.outbox.put_frame({"op": "error", "kind": "protocol", "message": str(exc)})
                continue
            if frame["op"] != "call":
                continue
            call_id = frame.get("id")
            try:
                value = await self._call(client, str(frame.get("method")), frame.get("args") or {})
                reply = {"op": "result", "id": call_id, "value": value}
            except CommandError as exc:
                reply = {"op": "result", "id": call_id,
                         "error": {"kind": exc.kind.value, "message": exc.message}}  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a client's call must not end the service
                self.log.exception("call %s failed", frame.get("method"))
                reply = {"op": "result", "id": call_id,
                         "error": {"kind": ErrorKind.FAILED.value, "message": scrub(str(exc))}}  # fmt: skip
            if not client.closed:
                client.outbox.put_frame(reply)

    async def _call(self, client: ClientConnection, method: str, args: dict):
        engine = self.engine
        assert engine is not None
        if method not in METHODS or not isinstance(args, dict):
            raise CommandError(f"unknown call {method!r}", ErrorKind.USAGE)
        if method == "subscribe":
            snapshot = await engine.snapshot()
            client.subscribed = True  # no await since the snapshot: no event is missed or doubled
            return snapshot.to_json()
        if method == "snapshot":
            return (await engine.snapshot()).to_json()
        if method == "status":
            return self.status()
        if method == "stop":
            self.log.info("%s asked the service to stop", client.describe())
            asyncio.get_running_loop().call_soon(self.request_stop, "engine stop")
            return {"pid": os.getpid()}
        if method == "enqueue":
            ref = str(args.get("ref") or "")
            self.log.info("%s: enqueue %s", client.describe(), scrub(ref))
            job_id = await engine.enqueue(
                ref, PullOptions.from_json(args.get("options")), HubSettings.from_json(args.get("hub"))
            )
            return job_id
        if method == "pause_all":
            self.log.info("%s: pause all", client.describe())
            return await engine.pause_all()
        try:
            job_id = int(args["job_id"])
        except (KeyError, TypeError, ValueError):
            raise CommandError(f"{method}: a job id is needed", ErrorKind.USAGE) from None
        if method == "cancel_preview":
            return (await engine.cancel_preview(job_id)).to_json()
        if method == "job":
            return (await engine.job(job_id)).to_json()
        self.log.info("%s: %s %d", client.describe(), method, job_id)
        if method == "move":
            await engine.move(job_id, int(args.get("delta") or 0))
        else:
            await getattr(engine, method)(job_id)
        return None

    def status(self) -> dict:
        assert self.engine is not None
        return {
            "pid": os.getpid(),
            "version": __version__,
            "protocol": PROTOCOL,
            "store": str(self.config.store),
            "socket": str(self.paths.socket),
            "log": str(self.paths.log),
            "started_at": self.started_at,
            "clients": len(self.clients),
            "jobs": len(self.engine.queue.jobs()),
            "active": self.engine.active_count(),
            "idle_exit": self.idle_exit,
        }


async def _refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kind: str, message: str, **extra
) -> None:
    """Send one error frame and close. What the client sent is read first: closing a Unix
    socket with unread input resets the connection, and the client might miss the error."""
    try:
        writer.write(encode({"op": "error", "kind": kind, "message": message, **extra}))
        await asyncio.wait_for(writer.drain(), 1.0)
        writer.write_eof()

        async def read_to_end() -> None:
            while await reader.read(65536):
                pass

        await asyncio.wait_for(read_to_end(), 2.0)
    except (ConnectionError, OSError, asyncio.TimeoutError, ValueError):
        pass
    writer.close()


def _service_auth(config: Config):
    """Auth for restored jobs: the service's own token, and only for its own Hub's origin."""
    from gguf_tui.hub.auth import auth_headers, get_token, origin_of

    hub_origin = origin_of(config.hub.endpoint)

    def headers_for(origin: str) -> dict[str, str]:
        return auth_headers(get_token()) if origin == hub_origin else {}

    return headers_for


def run_service(config: Config, *, detached: bool = False) -> int:
    """`gguf-tui engine run`: serve until stopped; exit 0, or 1 with one line on stderr."""
    from gguf_tui.service.paths import RuntimeDirError

    def on_ready() -> None:
        if detached:
            # Started in the background: nothing may write to the starter's terminal any more.
            os.chdir("/")  # do not keep the starter's folder (or its mount) busy
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)

    service = EngineService(config)
    try:
        return asyncio.run(service.serve(on_ready=on_ready))
    except AlreadyRunning as exc:
        print(f"gguf-tui: {exc}", file=sys.stderr)
        return 0 if detached else 1
    except RuntimeDirError as exc:
        print(f"gguf-tui: {exc}", file=sys.stderr)
        return 1


def release_free_heap() -> None:
    """Return freed heap pages to the system where the C library can (glibc's malloc_trim)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # another C library: nothing to trim, nothing lost

