"""Per-model manifests: one JSON file per logical model under `.gguf-tui/manifests/`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gguf_tui.fsutil import load_json_file, write_json_atomic

MANIFEST_FORMAT = 1

# Where a file's SHA-256 came from: only the first two make it "verified".
SHA256_PUBLISHED = "published"  # the Hub's LFS metadata, X-Linked-Etag, a catalog
SHA256_USER = "user"  # given by the user (--sha256)
SHA256_RECORDED = "recorded"  # computed by us (download or import) with nothing to compare to
REFERENCE_SOURCES = (SHA256_PUBLISHED, SHA256_USER)


class ManifestError(Exception):
    """A manifest file is unreadable or malformed; the model is shown as unmanaged."""


@dataclass
class ManifestFile:
    path: str  # relative to the store root
    size: int
    sha256: str
    role: str = "model"  # model, part, mmproj
    etag: str | None = None
    last_modified: str | None = None
    url: str | None = None  # redacted: no query string, no credentials
    verified_at: float | None = None
    verify_failed_at: float | None = None  # the last re-hash found other bytes (cleared on success)
    sha256_source: str | None = None  # SHA256_PUBLISHED, SHA256_USER or SHA256_RECORDED
    # scheme://host:port that served the bytes: the Hub endpoint or mirror (hub.endpoint, a
    # hub.fallback_endpoints entry) or the plain URL's host; None for imports and old manifests.
    origin: str | None = None

    @property
    def has_reference(self) -> bool:
        """Whether `sha256` was checked against a published or user-given hash ("verified")."""
        return self.sha256_source in REFERENCE_SOURCES

    @classmethod
    def from_json(cls, entry: Any) -> ManifestFile:
        """A file entry; keys this version does not know are ignored (forward compatible)."""
        if not isinstance(entry, dict):
            raise TypeError("file entry is not an object")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in entry.items() if key in known})


@dataclass
class Manifest:
    name: str
    files: list[ManifestFile]
    source: dict[str, Any] = field(default_factory=dict)
    license: str | None = None
    gguf: dict[str, Any] = field(default_factory=dict)
    added_at: float = field(default_factory=time.time)
    last_used_at: float | None = None
    format: int = MANIFEST_FORMAT

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any, origin: str = "manifest") -> Manifest:
        try:
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            if raw.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {raw.get('format')!r}")
            if not isinstance(raw["files"], list):
                raise TypeError("files is not a list")
            files = [ManifestFile.from_json(entry) for entry in raw["files"]]
            for entry in files:
                if not isinstance(entry.path, str) or not isinstance(entry.size, int):
                    raise TypeError("bad file entry")
                if not isinstance(entry.sha256, str):
                    raise TypeError("bad sha256")
                entry.verified_at = _opt_time(entry.verified_at)
                entry.verify_failed_at = _opt_time(entry.verify_failed_at)
                entry.sha256_source = _sha256_source(entry.sha256_source, raw.get("source"))
            return cls(
                name=str(raw["name"]),
                files=files,
                source=dict(raw.get("source") or {}),
                license=raw.get("license"),
                gguf=dict(raw.get("gguf") or {}),
                added_at=float(raw.get("added_at") or 0.0),
                last_used_at=_opt_time(raw.get("last_used_at")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{origin}: invalid manifest ({exc})") from None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = load_json_file(path)
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
        return cls.from_json(raw, str(path))

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


def _sha256_source(value: Any, source: Any) -> str:
    """The entry's SHA-256 origin; manifests written before it was recorded get a safe guess:
    Hub downloads always had the Hub's hash to compare to, anything else is only "recorded"."""
    if value in (SHA256_PUBLISHED, SHA256_USER, SHA256_RECORDED):
        return value
    if value is not None:
        return SHA256_RECORDED  # a kind this version does not know: claim nothing for it
    kind = source.get("kind") if isinstance(source, dict) else None
    return SHA256_PUBLISHED if kind == "hub" else SHA256_RECORDED


def _opt_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"bad time {value!r}")
    return float(value)
