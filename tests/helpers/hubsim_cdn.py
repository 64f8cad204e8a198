"""The imitation Hub's CDN half: signed URLs, and file bodies with Range, If-Range, caching
headers and the faults a test asks for (rate, drops, corruption, ignored Range)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from email.utils import formatdate
from urllib.parse import quote, urlencode

from aiohttp import web

from tests.helpers.hubsim_data import SimFile, _Signed

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class CdnMixin:
    """`HubSim`'s CDN handlers; the state they read (files, faults, counters) is HubSim's."""


    def _signature(self, key: str, expires: int, serial: int) -> str:
        message = f"{key}|{expires}|{serial}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _sign(self, sim_file: SimFile) -> str:
        key = sim_file.sha256
        self._blobs[key] = sim_file
        self._last_serial += 1
        serial = self._last_serial
        expires = int(time.time() + self.signed_url_ttl)
        signature = self._signature(key, expires, serial)
        self._signed[signature] = _Signed(key, expires, serial)
        name = quote(sim_file.path.rsplit("/", 1)[-1])
        query = urlencode(
            {
                "response-content-disposition": f"attachment; filename*=UTF-8''{name}",
                "Expires": expires,
                "X-Amz-Credential": f"sim/{serial}",
                "X-Amz-Signature": signature,
            }
        )
        return f"{self.cdn_origin}/repos/{key[:2]}/{key[2:4]}/{key}?{query}"

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        signature = request.query.get("X-Amz-Signature", "")
        signed = self._signed.get(signature)
        key = request.match_info["key"]
        if (
            signed is None
            or signed.key != key
            or str(signed.expires) != request.query.get("Expires")
        ):
            return web.Response(status=403, text="<Error><Code>SignatureDoesNotMatch</Code></Error>")
        signed.uses += 1
        expired = (
            signed.expires < time.time()
            or signed.serial <= self._expired_up_to
            or (self.signed_url_max_uses is not None and signed.uses > self.signed_url_max_uses)
        )
        if expired:
            return web.Response(
                status=self.expired_status,
                text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            )
        sim_file = self._blobs[key]
        headers = {"Last-Modified": formatdate(1_700_000_000, usegmt=True), **self._cache_headers()}
        return await self._serve(request, sim_file, headers, etag=f'"{sim_file.sha256}"', cdn=True)

    async def _serve(
        self,
        request: web.Request,
        sim_file: SimFile,
        headers: dict[str, str],
        *,
        etag: str,
        cdn: bool = False,
    ) -> web.StreamResponse:
        size = sim_file.size
        headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
        start, end, status = 0, size, 200
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        use_range = range_header and not (cdn and self.cdn_ignore_range)
        if use_range and if_range and if_range not in (etag, headers.get("Last-Modified")):
            use_range = False
        if use_range:
            match = _RANGE_RE.match(range_header.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start = int(first)
                    end = min(size, int(last) + 1) if last else size
                else:
                    start, end = max(0, size - int(last)), size
                if start >= size or end <= start:
                    return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        await self._stream_body(request, response, sim_file, start, end, cdn)
        return response

    async def _stream_body(
        self,
        request: web.Request,
        response: web.StreamResponse,
        sim_file: SimFile,
        start: int,
        end: int,
        cdn: bool,
    ) -> None:
        drop_after = None
        if cdn and self.cdn_drop_after is not None:
            drop_after = self.cdn_drop_after
            if self.cdn_drop_times:
                self.cdn_drop_times -= 1
                if self.cdn_drop_times == 0:
                    self.cdn_drop_after = None
        corrupt = cdn and self.cdn_corrupt_times > 0
        if corrupt:
            self.cdn_corrupt_times -= 1
        sent = 0
        chunk_size = 64 * 1024
        position = start
        while position < end:
            chunk = sim_file.read(position, min(end, position + chunk_size))
            if corrupt and position == start:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            if drop_after is not None and sent + len(chunk) > drop_after:
                await response.write(chunk[: max(0, drop_after - sent)])
                if request.transport is not None:
                    request.transport.close()
                return
            await response.write(chunk)
            sent += len(chunk)
            position += len(chunk)
            if cdn and self.cdn_rate:
                await asyncio.sleep(len(chunk) / self.cdn_rate)
        await response.write_eof()
