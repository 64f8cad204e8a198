"""Where things live in the store: visible models, and hidden state under `.gguf-tui/`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gguf_tui.textsafe import plain

HIDDEN_DIR_NAME = ".gguf-tui"
PARTIAL_SUFFIX = ".part"
STATE_SUFFIX = ".state.json"
LOCK_SUFFIX = ".lock"

_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._+-]+")


class UnsafePathError(ValueError):
    """A remote path would escape the store or is not a plain relative path."""


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe '/'-separated relative path inside the store, else raise."""
    if not path or path != plain(path) or "\x00" in path:
        raise UnsafePathError(f"refusing path with control characters: {plain(path)!r}")
    if "\\" in path:
        raise UnsafePathError(f"refusing path with a backslash: {path!r}")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise UnsafePathError(f"refusing absolute path: {path!r}")
    parts = PurePosixPath(path).parts
    if any(part in ("..", ".") for part in path.split("/")) or not parts:
        raise UnsafePathError(f"refusing path that leaves its folder: {path!r}")
    if any(part.startswith(HIDDEN_DIR_NAME) for part in parts):
        raise UnsafePathError(f"refusing path inside the store's hidden folder: {path!r}")
    return "/".join(parts)


def safe_file_name(name: str) -> str:
    """A file name made of safe characters (control chars and escapes removed)."""
    cleaned = _SAFE_NAME_RE.sub("_", plain(name)).strip("._") or "model"
    return cleaned[:200]


@dataclass(frozen=True)
class StoreLayout:
    root: Path

    @property
    def hidden(self) -> Path:
        return self.root / HIDDEN_DIR_NAME

    @property
    def manifests_dir(self) -> Path:
        return self.hidden / "manifests"

    @property
    def partials_dir(self) -> Path:
        return self.hidden / "partials"

    @property
    def locks_dir(self) -> Path:
        return self.hidden / "locks"

    @property
    def jobs_dir(self) -> Path:
        """The engine's queue records (one JSON file per unfinished download)."""
        return self.hidden / "jobs"

    def ensure(self) -> None:
        for folder in (self.root, self.manifests_dir, self.partials_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def partial_path(self, key_hash: str) -> Path:
        return self.partials_dir / f"{key_hash}{PARTIAL_SUFFIX}"

    def state_path(self, key_hash: str) -> Path:
        return self.partials_dir / f"{key_hash}{STATE_SUFFIX}"

    def lock_path(self, key_hash: str) -> Path:
        return self.locks_dir / f"{key_hash}{LOCK_SUFFIX}"

    def manifest_path(self, model_name: str) -> Path:
        digest = hashlib.sha256(model_name.encode()).hexdigest()[:10]
        return self.manifests_dir / f"{safe_file_name(model_name)[:80]}-{digest}.json"

    def dest_path(self, relative: str) -> Path:
        """Absolute path for a checked relative path; refuses anything resolving outside root."""
        relative = check_relative_path(relative)
        target = self.root / relative
        root_resolved = self.root.resolve()
        if not target.parent.resolve().is_relative_to(root_resolved) and target.parent.exists():
            raise UnsafePathError(f"refusing path that resolves outside the store: {relative!r}")
        return target
