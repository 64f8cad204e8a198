"""Where things live in the store: visible models, and hidden state under `.gguf-tui/`."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gguf_tui.fsutil import LinkInTheWay, make_folders, open_folder_nofollow, share_new_folder
from gguf_tui.textsafe import plain

HIDDEN_DIR_NAME = ".gguf-tui"
PARTIAL_SUFFIX = ".part"
STATE_SUFFIX = ".state.json"
LOCK_SUFFIX = ".lock"

_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._+-]+")


class UnsafePathError(ValueError):
    """A remote path would escape the store or is not a plain relative path."""


class UnsafeStoreError(OSError):
    """The store's hidden folder (or one below it) is a symlink or not a folder: never used.

    An OSError (ELOOP), so writers that already handle filesystem errors fail cleanly with it.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__(errno.ELOOP, _unsafe_text(folder))
        self.folder = folder

    def __str__(self) -> str:
        return str(self.strerror)


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

    @property
    def state_dirs(self) -> tuple[Path, ...]:
        """The folders under the hidden folder that the store and the engine write into."""
        return (self.manifests_dir, self.partials_dir, self.locks_dir, self.jobs_dir)

    def ensure(self) -> None:
        """Create the hidden folders, refusing any that is a symlink (UnsafeStoreError).

        Every writer (downloads, import, locks, manifests) calls this first, so a link planted
        at `.gguf-tui` or below can never lead a write or a delete out of the store.
        """
        make_folders(self.root)
        for folder in (self.hidden, self.manifests_dir, self.partials_dir, self.locks_dir):
            try:
                folder.mkdir(exist_ok=True)
            except FileExistsError:
                pass  # a file or a dangling link: the check below says so
            _check_real_folder(folder)
            # In a shared store (README "A shared store on one box") the group writes here too;
            # this also mends a folder of ours made before the store was shared.
            share_new_folder(folder)
        _check_real_folder(self.jobs_dir, missing_ok=True)  # the engine creates it when needed
        if self.jobs_dir.is_dir():
            share_new_folder(self.jobs_dir)

    def check_hidden(self) -> None:
        """Raise UnsafeStoreError if the hidden folder or one below it is not a real folder."""
        for folder in (self.hidden, *self.state_dirs):
            _check_real_folder(folder, missing_ok=True)

    def open_hidden_dir(self, folder: Path) -> int:
        """An fd of a hidden folder reached from the root without following any symlink."""
        try:
            return open_folder_nofollow(self.root, folder.relative_to(self.root).parts)
        except LinkInTheWay:
            raise UnsafeStoreError(folder) from None

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


def _unsafe_text(folder: Path) -> str:
    return (
        f"refusing to use the store: {folder} is a symlink or not a folder (the store's hidden "
        f"folder is never followed through a link); remove it and try again"
    )


def _check_real_folder(folder: Path, missing_ok: bool = False) -> None:
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    if not stat_module.S_ISDIR(mode):
        raise UnsafeStoreError(folder)
