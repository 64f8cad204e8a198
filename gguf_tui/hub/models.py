"""Plain data the Hub client returns: search results, repo files and quantisation groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gguf_tui.textsafe import plain


@dataclass(frozen=True)
class SearchResult:
    """One repo from a Hub search; `id` is a validated `owner/name`."""

    id: str
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    last_modified: str | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "downloads": self.downloads,
            "likes": self.likes,
            "gated": self.gated,
            "last_modified": self.last_modified,
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class RepoInfo:
    """A repo's metadata: the commit a revision points at, gating, licence."""

    id: str
    sha: str | None = None
    gated: bool = False
    private: bool = False
    license: str | None = None
    downloads: int = 0
    likes: int = 0
    last_modified: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class HubFile:
    """One file of a repo tree.

    `path` is the remote path exactly as the Hub spells it (used only to build URLs);
    `display` is the same path with escapes stripped; `local_name` is the safe name it gets in
    the store (the base name, or a safe sub-path when two GGUF files share a base name).
    `sha256` is the LFS oid when it is a valid 64-hex SHA-256, else None.
    """

    path: str
    size: int | None
    sha256: str | None = None
    local_name: str = ""
    quant: str | None = None
    part: int | None = None  # 1-based index of a split part
    part_total: int | None = None
    is_mmproj: bool = False
    lfs: bool = False

    @property
    def display(self) -> str:
        return plain(self.path)

    @property
    def name(self) -> str:
        return plain(self.path.rsplit("/", 1)[-1])

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.display,
            "local_name": self.local_name,
            "size": self.size,
            "sha256": self.sha256,
            "quant": self.quant,
            "part": self.part,
            "part_total": self.part_total,
        }


@dataclass(frozen=True)
class QuantGroup:
    """One downloadable quantisation: a single file, or every part of a split file.

    `part_count` is the number of parts the names announce (1 for a single file); `complete`
    is False when some parts are missing from the tree. `total_size` sums the parts present.
    """

    quant: str | None  # None for GGUF files whose names carry no quant (RepoFiles.other)
    name: str  # display name: the file name, or for a split the first part's name
    files: tuple[HubFile, ...]
    total_size: int
    part_count: int
    complete: bool
    missing_parts: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "quant": self.quant,
            "name": self.name,
            "total_size": self.total_size,
            "part_count": self.part_count,
            "complete": self.complete,
            "missing_parts": list(self.missing_parts),
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True)
class SkippedPath:
    """A tree entry refused for safety; `path` is already stripped of escapes."""

    path: str
    reason: str


@dataclass(frozen=True)
class TreeListing:
    """A repo's file tree as listed: usable files, refused paths, and where the listing stopped.

    `truncated_at` is the entry cap when the Hub listed more entries than the client reads
    (files past it are missing), else None.
    """

    files: list[HubFile]
    skipped: list[SkippedPath]
    truncated_at: int | None = None


@dataclass(frozen=True)
class RepoFiles:
    """A repo's GGUF files at one revision, grouped for choosing a quantisation.

    `quants` is ordered by total size (ties by quant rank); `mmprojs` are projector files
    (never quants); `other` holds GGUF files whose names carry no recognisable quant;
    `skipped` lists unsafe paths that were left out; `truncated_at` is set when the listing was
    cut at the client's entry cap (some files may be missing).
    """

    repo: str
    revision: str
    commit: str | None
    quants: list[QuantGroup] = field(default_factory=list)
    mmprojs: list[HubFile] = field(default_factory=list)
    other: list[QuantGroup] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)
    gated: bool = False
    license: str | None = None
    truncated_at: int | None = None

    def find_quant(self, quant: str) -> list[QuantGroup]:
        wanted = quant.upper()
        return [g for g in self.quants if g.quant == wanted]

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "revision": plain(self.revision),
            "commit": self.commit,
            "gated": self.gated,
            "license": self.license,
            "quants": [g.to_json() for g in self.quants],
            "mmprojs": [f.to_json() for f in self.mmprojs],
            "other": [g.to_json() for g in self.other],
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "truncated_at": self.truncated_at,
        }
