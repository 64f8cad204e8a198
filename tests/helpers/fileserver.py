"""A real HTTP file server on 127.0.0.1 whose handlers misbehave on purpose.

Each served path has a `Behaviour`: drop the connection mid-body, ignore Range, change its ETag,
corrupt a byte, answer an error status first, stall, omit Content-Length, throttle. Every request
is logged with its headers and the bytes actually sent, so tests can check how a client resumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Behaviour:
    reset_after: list[int] = field(default_factory=list)  # per request: drop after N body bytes
    ignore_range: bool = False
    etag_changes_after_first: bool = False
    corrupt_attempts: int = 0  # the first N full/partial bodies have one flipped byte
    statuses: list[tuple[int, dict]] = field(default_factory=list)  # answered first, in order
    chunked: bool = False
    stall_after: list[int] = field(default_factory=list)  # per request: go silent after N bytes
    rate: int | None = None  # bytes per second per connection
    html_instead: bool = False
    no_validators: bool = False


@dataclass
class RequestRecord:
    path: str
    headers: dict[str, str]
    status: int = 0
    range_start: int | None = None
    bytes_sent: int = 0


class FileServer:
    """`async with FileServer() as server: server.add('/m.gguf', data); server.url('/m.gguf')`."""

    def __init__(self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context  # serve HTTPS (the URLs then say https)
        self.files: dict[str, bytes] = {}
        self.behaviours: dict[str, Behaviour] = {}
        self.log: list[RequestRecord] = []
        self._counts: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._etag_serial = 0

    def add(self, path: str, data: bytes | Path, behaviour: Behaviour | None = None) -> str:
        if isinstance(data, Path):
            data = data.read_bytes()
        self.files[path] = data
        self.behaviours[path] = behaviour or Behaviour()
        return self.url(path)

    def url(self, path: str) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def requests(self, path: str) -> list[RequestRecord]:
        return [record for record in self.log if record.path == path]

    def bytes_sent(self, path: str) -> int:
        return sum(record.bytes_sent for record in self.requests(path))

    async def __aenter__(self) -> FileServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _etag(self, path: str, attempt: int) -> str:
        behaviour = self.behaviours[path]
        digest = hashlib.md5(self.files[path]).hexdigest()[:16]
        if behaviour.etag_changes_after_first and attempt > 0:
            return f'"{digest}-v2"'
        return f'"{digest}"'

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        record = RequestRecord(path, dict(request.headers))
        self.log.append(record)
        if path not in self.files:
            record.status = 404
            return web.Response(status=404, text="not found")
        attempt = self._counts.get(path, 0)
        self._counts[path] = attempt + 1
        behaviour = self.behaviours[path]
        if behaviour.statuses:
            status, headers = behaviour.statuses.pop(0)
            record.status = status
            return web.Response(status=status, headers=headers, text=f"status {status}")
        if behaviour.html_instead:
            record.status = 200
            return web.Response(text="<html><body>Please log in</body></html>", content_type="text/html")
        data = self.files[path]
        if behaviour.corrupt_attempts > 0 and attempt < behaviour.corrupt_attempts:
            corrupted = bytearray(data)
            corrupted[len(corrupted) // 2] ^= 0xFF
            data = bytes(corrupted)
        etag = self._etag(path, attempt)
        headers = {"Accept-Ranges": "bytes"}
        if not behaviour.no_validators:
            headers["ETag"] = etag
            headers["Last-Modified"] = "Mon, 02 Nov 2026 10:00:00 GMT"
        start, end = 0, len(data)
        status = 200
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        match = _RANGE_RE.match(range_header or "")
        if match and not behaviour.ignore_range and (if_range is None or if_range == etag
                                                     or if_range == headers.get("Last-Modified")):
            start = int(match.group(1))
            end = int(match.group(2)) + 1 if match.group(2) else len(data)
            end = min(end, len(data))
            if start >= len(data):
                record.status = 416
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        record.status = status
        record.range_start = start if status == 206 else None
        response = web.StreamResponse(status=status, headers=headers)
        if behaviour.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = end - start
        await response.prepare(request)
        reset_at = behaviour.reset_after[attempt] if attempt < len(behaviour.reset_after) else None
        stall_at = behaviour.stall_after[attempt] if attempt < len(behaviour.stall_after) else None
        position = start
        block = 64 * 1024
        while position < end:
            chunk_end = min(end, position + block)
            if reset_at is not None and record.bytes_sent + (chunk_end - position) > reset_at:
                chunk_end = position + max(0, reset_at - record.bytes_sent)
                if chunk_end > position:
                    await response.write(data[position:chunk_end])
                    record.bytes_sent += chunk_end - position
                request.transport.close()  # type: ignore[union-attr]
                return response
            if stall_at is not None and record.bytes_sent >= stall_at:
                await asyncio.sleep(3600)
            await response.write(data[position:chunk_end])
            record.bytes_sent += chunk_end - position
            position = chunk_end
            if behaviour.rate:
                await asyncio.sleep((chunk_end - (chunk_end - block)) / behaviour.rate)
        await response.write_eof()
        return response
