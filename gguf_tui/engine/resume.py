"""Resume state of one partial file: what is on disk and how to ask the server for the rest.

Saved as JSON next to the partial, atomically (write a temp file, fsync, rename). A state that is
missing, truncated or inconsistent is never trusted: the caller discards the partial.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from gguf_tui.fsutil import load_json_file, write_json_atomic
from gguf_tui.httputil import valid_etag, valid_http_date

STATE_FORMAT = 1


class ResumeStateError(Exception):
    """The state file exists but cannot be trusted."""


def merge_ranges(ranges: list[list[int]] | list[tuple[int, int]]) -> list[list[int]]:
    """Sort and merge half-open [start, end) byte ranges; adjacent ranges join."""
    merged: list[list[int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in ranges if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def missing_ranges(done: list[list[int]], total: int) -> list[list[int]]:
    """The holes in [0, total) not covered by `done` (which must be merged)."""
    holes: list[list[int]] = []
    position = 0
    for start, end in done:
        if start > position:
            holes.append([position, min(start, total)])
        position = max(position, end)
    if position < total:
        holes.append([position, total])
    return [hole for hole in holes if hole[1] > hole[0]]


@dataclass
class ResumeState:
    resume_key: str  # plain URL or Hub resolve URL + revision; never a signed URL
    dest: str
    total_size: int | None = None
    expected_sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    ranges: list[list[int]] = field(default_factory=list)
    saved_at: float = 0.0
    created_at: float = field(default_factory=time.time)

    @property
    def validator(self) -> str | None:
        """The If-Range value: a strong ETag, else Last-Modified."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    @property
    def bytes_done(self) -> int:
        return sum(end - start for start, end in self.ranges)

    @property
    def contiguous_prefix(self) -> int:
        if self.ranges and self.ranges[0][0] == 0:
            return self.ranges[0][1]
        return 0

    def to_json(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "resume_key": self.resume_key,
            "dest": self.dest,
            "total_size": self.total_size,
            "expected_sha256": self.expected_sha256,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "ranges": self.ranges,
            "bytes_done": self.bytes_done,
            "saved_at": self.saved_at,
            "created_at": self.created_at,
        }

    def save(self, path: Path, mode: int | None = None) -> None:
        """Write atomically; `mode` is the state file's permission bits (see state_file_mode)."""
        self.saved_at = time.time()
        write_json_atomic(path, self.to_json(), mode)

    @classmethod
    def load(cls, path: Path) -> ResumeState:
        try:
            raw = load_json_file(path)
        except (OSError, ValueError) as exc:
            raise ResumeStateError(f"unreadable resume state {path.name}: {exc}") from None
        try:
            if raw.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            state = cls(
                resume_key=str(raw["resume_key"]),
                dest=str(raw["dest"]),
                total_size=_opt_int(raw.get("total_size")),
                expected_sha256=_opt_sha256(raw.get("expected_sha256")),
                etag=_opt_validator(raw.get("etag"), valid_etag, "ETag"),
                last_modified=_opt_validator(
                    raw.get("last_modified"), valid_http_date, "Last-Modified date"
                ),
                ranges=merge_ranges([[int(s), int(e)] for s, e in raw.get("ranges", [])]),
                saved_at=float(raw.get("saved_at", 0.0)),
                created_at=float(raw.get("created_at", 0.0)),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ResumeStateError(f"invalid resume state {path.name}: {exc}") from None
        if any(start < 0 for start, _ in state.ranges):
            raise ResumeStateError(f"invalid resume state {path.name}: negative range")
        if state.total_size is not None and state.ranges and state.ranges[-1][1] > state.total_size:
            raise ResumeStateError(f"invalid resume state {path.name}: range past end of file")
        return state


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad size {value!r}")
    return value


def _opt_sha256(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValueError("bad expected SHA-256")
    return value.lower()


def _opt_validator(value: object, check, what: str) -> str | None:
    """A saved validator goes back to the server in If-Range: only a well-formed one is used."""
    if value is None:
        return None
    if not isinstance(value, str) or check(value) is None:
        raise ValueError(f"unusable {what} {value!r:.40}")
    return value
