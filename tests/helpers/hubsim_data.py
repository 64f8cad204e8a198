"""The data of the local Hub imitation (`tests.helpers.hubsim`): files, repos, request records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SimFile:
    """A file in a simulated repo; `content` is bytes or a path read lazily.

    `lfs=False` makes it a small git file served directly by the API host. `lfs_oid` overrides
    the SHA-256 the Hub advertises (tree `lfs.oid` and `X-Linked-Etag`), e.g. to test bad oids
    or checksum mismatches; the CDN always serves the real bytes.
    """

    path: str
    content: bytes | Path
    lfs: bool = True
    lfs_oid: str | None = None
    _sha256: str | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        if isinstance(self.content, Path):
            return self.content.stat().st_size
        return len(self.content)

    @property
    def sha256(self) -> str:
        """The real SHA-256 of the content."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            if isinstance(self.content, Path):
                with self.content.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            else:
                digest.update(self.content)
            self._sha256 = digest.hexdigest()
        return self._sha256

    @property
    def advertised_sha256(self) -> str:
        return self.lfs_oid if self.lfs_oid is not None else self.sha256

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(f"blob {self.size}\0".encode() + self.sha256.encode()).hexdigest()

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the content."""
        if isinstance(self.content, Path):
            with self.content.open("rb") as handle:
                handle.seek(start)
                return handle.read(end - start)
        return self.content[start:end]


@dataclass
class SimRepo:
    id: str
    files: dict[str, SimFile] = field(default_factory=dict)
    gated: bool = False
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=lambda: ["gguf"])
    last_modified: str = "2025-05-01T12:00:00.000Z"
    license: str | None = "apache-2.0"
    sha: str = ""
    revisions: dict[str, str] = field(default_factory=dict)  # name -> commit sha

    def __post_init__(self) -> None:
        if not self.sha:
            self.sha = hashlib.sha1(f"commit:{self.id}".encode()).hexdigest()
        self.revisions.setdefault("main", self.sha)

    def commit_for(self, revision: str) -> str | None:
        if revision in self.revisions:
            return self.revisions[revision]
        return revision if revision in self.revisions.values() else None


@dataclass
class RecordedRequest:
    host: str  # "api" or "cdn"
    method: str
    path_qs: str
    headers: dict[str, str]
    status: int | None = None


@dataclass
class _Fault:
    host: str
    status: int
    times: int
    headers: dict[str, str]
    path_contains: str | None
    method: str | None
    body: bytes


@dataclass
class _Signed:
    key: str  # real sha256 of the content
    expires: int
    serial: int
    uses: int = 0


def gguf_bytes(**make_gguf_kwargs: Any) -> bytes:
    """A real GGUF file's bytes, written by `tests.helpers.ggufgen.make_gguf`."""
    import tempfile

    from tests.helpers.ggufgen import make_gguf

    with tempfile.TemporaryDirectory() as folder:
        path = make_gguf(Path(folder) / "model.gguf", **make_gguf_kwargs)
        return path.read_bytes()
