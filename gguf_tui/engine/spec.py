"""What a download job is: the files of one logical model and where they go."""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from gguf_tui.httputil import origin_of
from gguf_tui.textsafe import split_credentials


class JobState(str, enum.Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    RETRYING = "retrying"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ELSEWHERE = "downloading elsewhere"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)

    @property
    def is_active(self) -> bool:
        return self in (JobState.DOWNLOADING, JobState.RETRYING, JobState.VERIFYING)


@dataclass
class FileRequest:
    """One file to download.

    `url` is the stable URL (a plain URL, or a Hub `resolve` URL that redirects to a signed CDN
    URL); together with `revision` it is the resume key. Signed URLs met on redirects are kept in
    memory only. `auth_headers` are sent only to `auth_origin` (scheme://host:port), never to a
    host a redirect points at, and never persisted. Credentials written in the URL
    (`http://user:pass@host/…`) are moved out of `url` at once into a Basic `auth_headers` entry
    for that origin, so the URL that is stored, shown and used as a key never holds them.
    """

    url: str
    dest: str  # path relative to the store root, '/'-separated, already checked for safety
    expected_sha256: str | None = None
    expected_size: int | None = None
    revision: str | None = None
    role: str = "model"  # "model", "part" or "mmproj"
    # Where expected_sha256 comes from ("user": --sha256; "recorded": a repair restoring the bytes
    # a manifest recorded); None: published (the Hub, a catalog). Written to the manifest.
    sha256_origin: str | None = None
    auth_headers: dict[str, str] = field(default_factory=dict, repr=False)
    auth_origin: str | None = None
    # The same file at other stable URLs (hub.fallback_endpoints), tried in order when `url`
    # answers 5xx or cannot be reached; the resume key stays `url`'s.
    mirror_urls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.url, credentials = split_credentials(self.url)
        if credentials is None:
            return
        try:
            origin = origin_of(self.url)
        except ValueError:
            return  # an unusable URL: the download fails on it with a clear message
        if self.auth_origin not in (None, origin):
            return  # the other headers belong to another origin; never mix the two
        user, password = credentials
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.auth_headers = {**self.auth_headers, "Authorization": f"Basic {token}"}
        self.auth_origin = origin

    def sends_auth_to(self, url: str) -> bool:
        """Whether `auth_headers` go to `url`: its origin is `auth_origin`, or `url` is on a
        mirror of a stable URL whose origin holds them (a user-configured Hub endpoint)."""
        if self.auth_origin is None:
            return False
        try:
            target = origin_of(url)
        except ValueError:
            return False
        if target == self.auth_origin:
            return True
        if origin_of(self.url) != self.auth_origin:
            return False
        return any(origin_of(mirror) == target for mirror in self.mirror_urls)

    @property
    def resume_key(self) -> str:
        return f"{self.url}@{self.revision}" if self.revision else self.url

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.resume_key.encode()).hexdigest()[:32]


@dataclass
class JobSpec:
    """One logical model: every file (split parts, mmproj) lands under one manifest."""

    name: str
    files: list[FileRequest]
    source: dict[str, Any] = field(default_factory=dict)  # no secrets: written to the manifest
    license: str | None = None
    # The asking client's proxy routes (gguf_tui.proxies.ProxyRoutes; may hold credentials):
    # memory only, never written; None: the engine's own.
    proxy_routes: Any = field(default=None, repr=False, compare=False)

    @property
    def total_size(self) -> int | None:
        sizes = [f.expected_size for f in self.files]
        if any(size is None for size in sizes):
            return None
        return sum(sizes)  # type: ignore[arg-type]
