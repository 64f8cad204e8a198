"""Download one file into its partial: resume, byte ranges over one or more connections, hashing.

The partial lives under `.gguf-tui/partials/` with its resume state beside it. Several
connections fill one preallocated file; writing and hashing it is `PartialFile`'s work.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import re
import shutil
import time
from pathlib import Path
from typing import Callable

import aiohttp

from gguf_tui.config import DownloadsConfig
from gguf_tui.engine.body import BodyReceiver
from gguf_tui.engine.errors import (
    ChecksumMismatch,
    FatalDownloadError,
    RestartFromZero,
    RetryableError,
    most_telling,
)
from gguf_tui.engine.http import (
    CONTENT_RANGE_RE,
    check_request_url,
    check_status,
    redirect_target,
    transfer_error,
)
from gguf_tui.engine.partial import PartialFile
from gguf_tui.engine.ratelimit import RateLimiter
from gguf_tui.engine.retries import RetryPolicy
from gguf_tui.engine.resume import ResumeState, ResumeStateError, merge_ranges, missing_ranges
from gguf_tui.engine.segments import Segment, SegmentPlan
from gguf_tui.engine.spec import FileRequest
from gguf_tui.engine.stall import watch_for_stall
from gguf_tui.fsutil import state_file_mode
from gguf_tui.httputil import origin_of, valid_etag, valid_http_date
from gguf_tui.store.layout import StoreLayout
from gguf_tui.textsafe import redact_url
from gguf_tui.units import format_size

MAX_REDIRECTS = 10
MAX_RESOLVES = 3
EMPTY_FILE_MESSAGE = "the server sent an empty file (0 bytes), which cannot be a GGUF model"


def check_fits_filesystem(root: Path, size: int, label: str) -> None:
    """Refuse a size larger than the whole filesystem holding the store: no amount of freeing
    space would let it fit, so it fails instead of pausing."""
    capacity = shutil.disk_usage(root).total
    if size > capacity:
        raise FatalDownloadError(
            f"{label} is {format_size(size)}, more than the whole disk holding the store "
            f"({format_size(capacity)}): it cannot be downloaded here"
        )


class FileDownload(BodyReceiver):
    """Brings one file from its URL to a verified partial, ready to be placed."""

    def __init__(
        self,
        request: FileRequest,
        layout: StoreLayout,
        settings: DownloadsConfig,
        session: aiohttp.ClientSession,
        limiter: RateLimiter,
        *,
        connections: int = 1,
        on_retry: Callable[[int, int, str, float], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_fresh_total: Callable[[int], None] | None = None,
    ) -> None:
        self.request = request
        self.layout = layout
        self.settings = settings
        self.session = session
        self.limiter = limiter
        self.connections = max(1, connections)
        # Requests of at most 16 MiB: a connection's in-flight range stays short, so the tail
        # of a download can be shared out; stealing splits unrequested ranges down to 8 MiB.
        self.request_size = min(max(settings.min_segment_size, 4 * 1024 * 1024), 16 * 1024 * 1024)
        self.steal_min = min(settings.min_segment_size, 4 * 1024 * 1024)
        self.on_retry = on_retry or (lambda *_: None)
        self.on_notice = on_notice or (lambda _: None)
        self.on_fresh_total = on_fresh_total or (lambda _: None)
        self.partial_path = layout.partial_path(request.key_hash)
        self.state_path = layout.state_path(request.key_hash)
        self.state = ResumeState(request.resume_key, request.dest)
        self.expected_sha256 = (request.expected_sha256 or "").lower() or None
        self.expected_size = request.expected_size
        self.sha256: str | None = None
        self.rechecking_until = 0  # resumed prefix that is being re-hashed from disk
        self.partial = PartialFile(self.partial_path, Path(request.dest).name)
        self._resolved_url: str | None = None
        # The stable URL asked now: `request.url`, or one of its mirrors after it failed. Its
        # origin is recorded in the manifest as the one that served the file.
        self.source_url = request.url
        self._ranges_changed = asyncio.Event()
        self._plan = SegmentPlan([], steal_min=self.steal_min, silent_after=1.0)
        self._last_saved = 0.0
        self._state_mode = 0o600  # set from the store's root in run()
        self._buffer_pairs: list[tuple[bytearray, bytearray]] = []  # reused by socket bodies
        # No sock_read: aiohttp would re-arm a timer per socket read; watch_for_stall checks
        # each request's progress once a second instead.
        self._request_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=None
        )

    # ---- public progress -------------------------------------------------------------------

    @property
    def bytes_done(self) -> int:
        return self.state.bytes_done

    @property
    def total(self) -> int | None:
        return self.state.total_size or self.expected_size

    @property
    def hashed(self) -> int:
        return self.partial.hashed

    # ---- state -----------------------------------------------------------------------------

    def load_state(self) -> None:
        """Trust a partial only together with a readable, matching state; else start clean."""
        partial_exists = self.partial_path.exists()
        if self.state_path.exists():
            try:
                state = ResumeState.load(self.state_path)
                self._check_state(state, partial_exists)
            except ResumeStateError as exc:
                self.on_notice(f"discarded a partial download: {exc}; starting again")
                self.discard_files()
                return
            self.state = state
            if state.total_size is not None:
                self.expected_size = self.expected_size or state.total_size
            return
        if partial_exists:
            self.on_notice("discarded a partial download without resume state; starting again")
            self.discard_files()

    def _check_state(self, state: ResumeState, partial_exists: bool) -> None:
        if state.resume_key != self.request.resume_key:
            raise ResumeStateError("it belongs to another URL")
        if not partial_exists and state.ranges:
            raise ResumeStateError("its partial file is missing")
        if (
            self.expected_sha256
            and state.expected_sha256
            and state.expected_sha256.lower() != self.expected_sha256
        ):
            raise ResumeStateError("the expected SHA-256 changed")
        if self.expected_size and state.total_size and state.total_size != self.expected_size:
            raise ResumeStateError("the expected size changed")
        if partial_exists and state.ranges:
            on_disk = self.partial_path.stat().st_size
            if state.ranges[-1][1] > on_disk:
                raise ResumeStateError("the partial file is shorter than its state says")

    def save_state(self) -> bool:
        """Write the resume state; on a full disk the previous state file stays valid."""
        self.state.expected_sha256 = self.expected_sha256
        try:
            self.state.save(self.state_path, self._state_mode)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            return False
        self._last_saved = time.monotonic()
        return True

    def maybe_save_state(self) -> None:
        if time.monotonic() - self._last_saved >= self.settings.state_save_interval:
            self.save_state()

    def discard_files(self) -> None:
        for path in (self.partial_path, self.state_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.state = ResumeState(self.request.resume_key, self.request.dest)

    def _reset_to_zero(self, reason: str) -> None:
        self.on_notice(f"starting {Path(self.request.dest).name} again from 0: {reason}")
        self.partial.restart()
        self.state = ResumeState(self.request.resume_key, self.request.dest)
        self.rechecking_until = 0
        self.save_state()

    # ---- hashing --------------------------------------------------------------------------

    async def _hash_loop(self) -> None:
        while True:
            prefix = self.state.contiguous_prefix
            if self.partial.hashed < prefix:
                await self.partial.hash_upto(prefix)
                continue
            self._ranges_changed.clear()
            await self._ranges_changed.wait()

    def _mark_done(self, start: int, end: int) -> None:
        if end <= start:
            return
        self.state.ranges = merge_ranges(self.state.ranges + [[start, end]])
        self._ranges_changed.set()

    # ---- HTTP --------------------------------------------------------------------------------

    async def _open(self, start: int, end: int | None) -> aiohttp.ClientResponse:
        """GET the range, following redirects by hand so credentials stay on their origin."""
        headers = {"Accept-Encoding": "identity"}
        if start > 0 or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
            if self.state.validator:
                headers["If-Range"] = self.state.validator
        for _resolve in range(MAX_RESOLVES):
            url = self._resolved_url or self.source_url
            for _hop in range(MAX_REDIRECTS):
                request_headers = dict(headers)
                if self.request.auth_headers and self.request.sends_auth_to(url):
                    request_headers.update(self.request.auth_headers)
                try:
                    response = await self.session.get(
                        url,
                        headers=request_headers,
                        allow_redirects=False,
                        timeout=self._request_timeout,
                    )
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                    failure = transfer_error(exc)
                    unreachable = isinstance(failure, RetryableError) and url == self.source_url
                    if unreachable and self._next_source(failure):
                        url = self.source_url
                        continue
                    raise type(failure)(f"connection failed: {failure}") from None
                if response.status >= 500 and url == self.source_url and self._next_source(
                    f"HTTP {response.status}"
                ):
                    response.release()
                    url = self.source_url
                    continue
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    self._note_linked_headers(response)
                    location = response.headers["Location"]
                    response.release()
                    url = redirect_target(self.request.url, url, location)
                    continue
                break
            else:
                raise FatalDownloadError(f"too many redirects for {redact_url(self.request.url)}")
            redirected = url != self.source_url
            if redirected and response.status in (401, 403, 410):
                # A signed CDN URL that expired: resolve the stable URL again and go on.
                response.release()
                self._resolved_url = None
                continue
            if redirected:
                self._resolved_url = url
            return response
        raise RetryableError("the download URL keeps expiring")

    def _next_source(self, why: object) -> bool:
        """Move on to the next mirror of the file (hub.fallback_endpoints) after its current
        source answered 5xx or could not be reached; False when none is left."""
        sources = [self.request.url, *self.request.mirror_urls]
        index = sources.index(self.source_url) if self.source_url in sources else len(sources)
        if index + 1 >= len(sources):
            return False
        failed = origin_of(self.source_url)
        self.source_url = sources[index + 1]
        self._resolved_url = None
        self.on_notice(f"{failed} failed ({why}); trying {origin_of(self.source_url)}")
        return True

    def _note_linked_headers(self, response: aiohttp.ClientResponse) -> None:
        linked_etag = response.headers.get("X-Linked-Etag", "").strip('"').lower()
        if not self.expected_sha256 and re.fullmatch(r"[0-9a-f]{64}", linked_etag):
            self.expected_sha256 = linked_etag
        linked_size = response.headers.get("X-Linked-Size", "")
        if not self.expected_size and re.fullmatch(r"[0-9]{1,20}", linked_size):
            self.expected_size = int(linked_size)

    def _take_validator(self, response: aiohttp.ClientResponse) -> None:
        """Keep the answer's validators for If-Range; malformed ones count as absent (they go
        back to the server verbatim and into the resume state)."""
        self.state.etag = valid_etag(response.headers.get("ETag"))
        self.state.last_modified = valid_http_date(response.headers.get("Last-Modified"))

    def _set_total(self, total: int) -> None:
        if total == 0:
            raise FatalDownloadError(EMPTY_FILE_MESSAGE)
        if self.state.total_size is None:
            check_fits_filesystem(self.layout.root, total, Path(self.request.dest).name)
        if self.expected_size is not None and total != self.expected_size:
            raise ChecksumMismatch(
                f"download corrupted: server offers {total} bytes, expected {self.expected_size}"
            )
        if self.state.total_size is None:
            self.state.total_size = total
            self.on_fresh_total(total)
            self.partial.reserve(total)
        elif self.state.total_size != total:
            raise RestartFromZero("the file's size changed on the server")

    async def _fetch_segment(self, segment: Segment, probe: asyncio.Event) -> None:
        """Fill `segment` from one response; returns when it is complete."""
        asked_start = segment.received
        asked_end = segment.end
        if self.connections > 1:
            # One piece per request, pieces handed out in file order: the hashed prefix keeps
            # up with the download, and ranges never overlap.
            limit = asked_start + self.request_size
            asked_end = limit if asked_end is None else min(asked_end, limit)
            self._plan.give_back(segment, asked_end)
        if asked_end is not None and asked_end == self.state.total_size:
            asked_end = None  # the tail: an open range reads the same and survives a size check
        segment.requested_end = asked_end if asked_end is not None else (segment.end or 2**63)
        response = await self._open(asked_start, asked_end)
        try:
            check_status(response, self.request.url)
            ranged = asked_start > 0 or asked_end is not None
            if response.status == 416:
                self._refused_range(response, asked_start)
            if response.headers.get("Content-Encoding", "identity") not in ("identity", ""):
                raise FatalDownloadError("the server compressed the body despite identity encoding")
            if response.status == 206:
                match = CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != asked_start:
                    raise RestartFromZero("the server sent a different byte range than asked")
                if match.group(3) != "*":
                    self._set_total(int(match.group(3)))
                    if segment.end is None:
                        segment.end = self.state.total_size
                        if asked_end is not None:
                            self._plan.give_back(segment, asked_end)
                total = self.state.total_size
                if asked_end is not None and total is not None and asked_end > total:
                    asked_end = segment.requested_end = total  # a file shorter than one request
                etag = valid_etag(response.headers.get("ETag"))
                if self.state.etag and etag and etag != self.state.etag:
                    raise RestartFromZero("the file changed on the server")
                if not self.state.validator:
                    self._take_validator(response)
                self._plan.can_split = self.state.total_size is not None
            else:  # 200: the whole file
                if ranged:
                    if len(self._plan.active) > 1 or probe.is_set():
                        raise RestartFromZero("the server sent the whole file instead of a range")
                    self._reset_to_zero("the server sent the whole file instead of a range")
                    segment.start = segment.received = 0
                self._plan.single_stream()  # one response carries the whole file
                self._take_validator(response)
                length = response.content_length
                if length is not None:
                    self._set_total(length)
                segment.end = self.state.total_size
                segment.requested_end = segment.end if segment.end is not None else 2**63
                asked_end = None
            probe.set()
            await self._stream_body(response, segment, asked_end)
        finally:
            response.release()

    async def _fetch_watched(self, segment: Segment, probe: asyncio.Event) -> None:
        """One request for `segment`, ended as a network failure when it stalls."""
        asked_at = time.monotonic()

        def last_progress() -> float:
            if segment.throttled:
                return time.monotonic()  # waiting for the rate limiter is not a stall
            return max(segment.last_data, asked_at)

        await watch_for_stall(
            self._fetch_segment(segment, probe), last_progress, self.settings.stall_timeout
        )

    def _refused_range(self, response: aiohttp.ClientResponse, asked_start: int) -> None:
        """416: an empty file says so in `bytes */0`; a refusal of the very first byte range
        falls back to one plain GET of the whole file."""
        claimed = re.fullmatch(r"bytes \*/([0-9]{1,20})", response.headers.get("Content-Range", ""))
        if claimed and int(claimed.group(1)) == 0:
            raise FatalDownloadError(EMPTY_FILE_MESSAGE)
        if asked_start == 0 and self.state.total_size is None:
            self.connections = 1  # the next try asks for the whole file without a Range
        raise RestartFromZero("the server refused the byte range")

    # ---- connections -------------------------------------------------------------------------

    async def _connection(self, first: Segment | None, probe: asyncio.Event) -> None:
        segment = first or self._plan.next_segment()
        policy = RetryPolicy(self.settings)
        while segment is not None:
            progress_mark = segment.received
            try:
                while segment.end is None or segment.received < segment.end:
                    before = segment.received
                    await self._fetch_watched(segment, probe)
                    if segment.end is None:
                        break
                    if segment.received <= before and segment.received < segment.end:
                        # Every answer must move the range on, or count as a failed attempt.
                        raise RetryableError("the server's answer held no bytes")
            except RetryableError as exc:
                if segment.received > progress_mark:
                    policy.progressed()
                next_try = policy.next_try(exc)  # or RetriesExhausted: time to stop
                self.on_retry(next_try.attempt, next_try.most, next_try.reason, next_try.delay)
                self.save_state()
                await asyncio.sleep(next_try.delay)
                continue
            self._plan.finished(segment)
            segment = await self._plan.wait_for_work()

    async def _transfer(self) -> None:
        total = self.state.total_size
        if total is not None:
            holes = missing_ranges(self.state.ranges, total)
            segments = [Segment(start, end) for start, end in holes]
        else:
            segments = [Segment(self.state.contiguous_prefix, None)]
            self.state.ranges = self.state.ranges[:1] if self.state.contiguous_prefix else []
        if not segments:
            return
        self._plan = SegmentPlan(
            segments,
            steal_min=self.steal_min,
            silent_after=max(1.0, self.settings.stall_timeout / 4),
        )
        probe = asyncio.Event()
        try:
            await self._run_connections(segments[0], probe)
        except BaseExceptionGroup as group:
            raise most_telling(group) from None

    async def _run_connections(self, first_segment: Segment, probe: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            first = group.create_task(self._connection(first_segment, probe))
            if self.connections > 1:
                probe_wait = asyncio.ensure_future(probe.wait())
                try:
                    await asyncio.wait([first, probe_wait], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    probe_wait.cancel()
                worth = (self.state.total_size or 0) >= 2 * self.settings.min_segment_size
                if probe.is_set() and self._plan.can_split and worth:
                    for _ in range(self.connections - 1):
                        group.create_task(self._connection(None, probe))

    # ---- the whole file ----------------------------------------------------------------------

    async def run(self) -> str:
        """Download until the partial is complete and verified; returns its SHA-256."""
        self.layout.ensure()
        check_request_url(self.request.url)
        self._state_mode = state_file_mode(self.layout.root)
        self.load_state()
        self.partial.open()
        hasher: asyncio.Task | None = None
        try:
            self.partial.reserve(self.state.total_size or 0)
            self.rechecking_until = self.state.contiguous_prefix
            self.save_state()
            hasher = asyncio.ensure_future(self._hash_loop())
            restarts = 0
            while True:
                try:
                    await self._transfer()
                    break
                except RestartFromZero as exc:
                    restarts += 1
                    reason = str(exc)
                    if restarts > self.settings.retries:
                        raise FatalDownloadError(f"cannot resume: {reason}") from None
                    await self.partial.drain()
                    self._reset_to_zero(reason)
            total = self.state.total_size if self.state.total_size is not None else 0
            if total == 0:
                raise FatalDownloadError(EMPTY_FILE_MESSAGE)
            if self.state.bytes_done != total:
                raise RetryableError("the download ended with bytes missing")
            while self.partial.hashed < total:
                await self.partial.hash_upto(total)
            self.sha256 = self.partial.hexdigest()
            self.save_state()
            self.verify()
            return self.sha256
        finally:
            if hasher is not None:
                hasher.cancel()
                await asyncio.wait([hasher])
            await self.partial.close()

    def verify(self) -> None:
        if self.expected_size is not None and self.state.total_size != self.expected_size:
            raise ChecksumMismatch(
                f"download corrupted: got {self.state.total_size} bytes, "
                f"expected {self.expected_size}"
            )
        if self.expected_sha256 and not hmac.compare_digest(
            (self.sha256 or "").encode(), self.expected_sha256.encode()
        ):
            raise ChecksumMismatch(
                f"download corrupted: SHA-256 of {Path(self.request.dest).name} is "
                f"{(self.sha256 or '')[:12]}…, expected {self.expected_sha256[:12]}…"
            )
