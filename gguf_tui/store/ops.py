"""Changing the store: delete a model safely, record a use, re-verify a model's files.

Deleting walks from the root one folder at a time with O_NOFOLLOW, so a symlinked folder can
never lead it out of the store, and it unlinks the last component itself: a symlink is removed
as a link, its target is never touched. Files that a download in progress owns are refused.
"""

from __future__ import annotations

import hmac
import os
import stat as stat_module
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gguf_tui.fsutil import LinkInTheWay, open_folder_nofollow
from gguf_tui.store.fileio import HashCancelled, HashProgress, sha256_file
from gguf_tui.store.layout import StoreLayout, UnsafePathError, check_relative_path
from gguf_tui.store.locks import user_name
from gguf_tui.store.manifest import Manifest, ManifestError
from gguf_tui.store.scan import StoreModel, StoreSnapshot
from gguf_tui.store.shared_root import group_name
from gguf_tui.store.usage import ActiveDownloads, active_downloads


class StoreBusyError(Exception):
    """A file of the model is being written by a download in progress; nothing was deleted."""


class UnsafeDeleteError(Exception):
    """A path would lead outside the store (e.g. through a symlinked folder)."""


# ---- deleting ----------------------------------------------------------------------------------


def _open_parent(root: Path, relative: str) -> tuple[int, str]:
    """An fd of the folder holding `relative`, reached without following any symlink below root."""
    relative = check_relative_path(relative)
    *folders, name = relative.split("/")
    try:
        fd = open_folder_nofollow(root, folders)
    except LinkInTheWay as exc:
        raise UnsafeDeleteError(
            f"refusing to delete {relative}: '{exc.part}' is a symlink or not a folder "
            f"(deleting never follows a link out of the store)"
        ) from None
    return fd, name


def unlink_in_store(root: Path, relative: str) -> str:
    """Remove one store entry; returns "file", "link" or "missing". Never follows a symlink."""
    try:
        fd, name = _open_parent(root, relative)
    except FileNotFoundError:
        return "missing"
    except UnsafePathError as exc:
        raise UnsafeDeleteError(str(exc)) from None
    try:
        try:
            stat = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return "missing"
        if stat_module.S_ISDIR(stat.st_mode):
            raise UnsafeDeleteError(f"refusing to delete {relative}: it is a folder")
        os.unlink(name, dir_fd=fd)
        return "link" if stat_module.S_ISLNK(stat.st_mode) else "file"
    finally:
        os.close(fd)


def remove_empty_folders(root: Path, relative: str) -> None:
    """Remove the now-empty folders a deleted file lived in (owner/repo/), up to the root."""
    parts = relative.split("/")[:-1]
    while parts:
        try:
            fd, name = _open_parent(root, "/".join(parts))
        except (OSError, UnsafeDeleteError, UnsafePathError):
            return
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            return  # not empty, or not ours to remove
        finally:
            os.close(fd)
        parts.pop()


@dataclass
class DeleteResult:
    name: str
    removed: list[str] = field(default_factory=list)  # store-relative paths of files deleted
    links_removed: list[str] = field(default_factory=list)  # symlinks removed (targets kept)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (path, why it could not go)
    shared: list[tuple[str, str]] = field(default_factory=list)  # (path, other model using it)
    missing: list[str] = field(default_factory=list)  # listed, but already gone from disk
    freed: int = 0  # store bytes no longer used
    manifest_removed: bool = False

    @property
    def complete(self) -> bool:
        """Everything that was to go went (a file another model uses is kept on purpose)."""
        return not self.kept

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "removed": self.removed,
            "links_removed": self.links_removed,
            "kept": [{"path": path, "reason": why} for path, why in self.kept]
            + [{"path": path, "reason": f"also a file of {other}"} for path, other in self.shared],
            "missing": self.missing,
            "complete": self.complete,
            "freed": self.freed,
            "manifest_removed": self.manifest_removed,
        }


def busy_files(model: StoreModel, active: ActiveDownloads) -> list[tuple[str, str]]:
    """(path, reason) for each file of the model that a download in progress owns."""
    found = []
    for entry in model.files:
        reason = active.busy_reason(entry.relative)
        if reason:
            found.append((entry.relative, reason))
    return found


def deletion_obstacle(root: Path, relative: str) -> str | None:
    """Why the store entry at `relative` could not be deleted now, or None if it could.

    Checked for every file of a model before any is deleted, so a model is deleted whole or
    not at all: a symlinked folder on the way, a folder where the file should be, or a folder
    that cannot be written (a read-only filesystem, no permission).
    """
    try:
        fd, name = _open_parent(root, relative)
    except FileNotFoundError:
        return None  # already gone: nothing to delete
    except (UnsafeDeleteError, UnsafePathError) as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        try:
            stat = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat_module.S_ISDIR(stat.st_mode):
            return f"refusing to delete {relative}: it is a folder, not a file"
        # faccessat on the folder: a read-only filesystem shows even for root, whom modes do
        # not stop
        if not os.access(".", os.W_OK, dir_fd=fd):
            return _unwritable_reason(fd)
        return _sticky_reason(fd, stat)
    finally:
        os.close(fd)


def _unwritable_reason(folder_fd: int) -> str:
    try:
        flags = os.fstatvfs(folder_fd).f_flag
    except OSError:
        flags = 0
    if flags & getattr(os, "ST_RDONLY", 1):
        return "the store is on a read-only filesystem"
    try:
        folder = os.fstat(folder_fd)
    except OSError:
        return "no permission to change its folder"
    if folder.st_uid != os.geteuid():
        # A store shared by several users: the folder is someone else's and its group (if any)
        # may not write to it (README "A shared store on one box").
        return (
            f"owned by user {user_name(folder.st_uid)} and the store is not group-writable for "
            f"you (its folder: group {group_name(folder.st_gid)}, mode "
            f"{folder.st_mode & 0o7777:o})"
        )
    return "no permission to change its folder"


def _sticky_reason(folder_fd: int, entry: os.stat_result) -> str | None:
    """In a sticky folder (mode +t) only a file's owner, the folder's owner or root deletes it."""
    folder = os.fstat(folder_fd)
    me = os.geteuid()
    if not folder.st_mode & stat_module.S_ISVTX or me in (0, entry.st_uid, folder.st_uid):
        return None
    return (
        f"owned by user {user_name(entry.st_uid)} in a sticky folder (only a file's owner may "
        "delete it there)"
    )


def delete_model(
    layout: StoreLayout,
    model: StoreModel,
    *,
    snapshot: StoreSnapshot | None = None,
    active: ActiveDownloads | None = None,
) -> DeleteResult:
    """Delete every file of the model and its manifest, or nothing of it.

    Raises StoreBusyError (deleting nothing) when a download in progress owns one of its files,
    and UnsafeStoreError when the hidden folder is a link. A file another managed model also
    lists is kept; a symlink is removed, never its target. When any file cannot be deleted (a
    symlinked folder on the way, a folder in its place, a read-only store) none is deleted and
    each obstacle is in `kept`; the manifest stays so the model stays visible.
    """
    layout.check_hidden()
    active = active if active is not None else active_downloads(layout)
    busy = busy_files(model, active)
    if busy:
        path, reason = busy[0]
        raise StoreBusyError(f"not deleting {model.name}: {path}: {reason}")
    result = DeleteResult(model.name)
    mine = []
    for entry in model.files:
        claims = snapshot.claims(entry.relative) if snapshot else []
        others = [m.name for m in claims if m.name != model.name]
        if others:
            result.shared.append((entry.relative, others[0]))
        else:
            mine.append(entry)
    obstacles = [
        (entry.relative, why)
        for entry in mine
        if (why := deletion_obstacle(layout.root, entry.relative)) is not None
    ]
    if model.manifest_path is not None and not obstacles:
        why = _manifest_obstacle(layout, model.manifest_path)
        if why:
            obstacles.append((str(model.manifest_path), why))
    if obstacles:
        result.kept.extend(obstacles)
        return result
    for entry in mine:
        try:
            outcome = unlink_in_store(layout.root, entry.relative)
        except UnsafeDeleteError as exc:
            result.kept.append((entry.relative, str(exc)))
            continue
        except OSError as exc:
            result.kept.append((entry.relative, exc.strerror or str(exc)))
            continue
        if outcome == "file":
            result.removed.append(entry.relative)
            result.freed += entry.disk_bytes
        elif outcome == "link":
            result.links_removed.append(entry.relative)
        else:
            result.missing.append(entry.relative)
        remove_empty_folders(layout.root, entry.relative)
    # A file that could not be deleted keeps the manifest, so the model stays visible.
    if model.manifest_path is not None and not result.kept:
        try:
            result.manifest_removed = remove_manifest(layout, model.manifest_path)
        except OSError as exc:
            result.kept.append((str(model.manifest_path), exc.strerror or str(exc)))
    return result


def _manifest_obstacle(layout: StoreLayout, path: Path) -> str | None:
    if path.parent != layout.manifests_dir:
        return f"its manifest {path} is not in the store's manifests folder"
    try:
        fd = layout.open_hidden_dir(layout.manifests_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return str(exc)
    try:
        if not os.access(".", os.W_OK, dir_fd=fd):
            return _unwritable_reason(fd)
        return None
    finally:
        os.close(fd)


def remove_manifest(layout: StoreLayout, path: Path) -> bool:
    """Delete a manifest by name inside the manifests folder (never through a link).

    Returns False when it was already gone; raises OSError (UnsafeStoreError for a linked
    hidden folder) when it could not be deleted.
    """
    if path.parent != layout.manifests_dir:
        raise UnsafeDeleteError(f"refusing to delete {path}: not in the store's manifests folder")
    try:
        fd = layout.open_hidden_dir(layout.manifests_dir)
    except FileNotFoundError:
        return False
    try:
        try:
            stat = os.stat(path.name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat_module.S_ISDIR(stat.st_mode):
            raise UnsafeDeleteError(f"refusing to delete {path}: it is a folder")
        os.unlink(path.name, dir_fd=fd)
        return True
    finally:
        os.close(fd)


def manifest_paths_named(layout: StoreLayout, name: str) -> list[Path]:
    """Every manifest file that records the model `name`, whatever the file is called.

    A manifest's file name is derived from its model name when written, but a file renamed by
    hand (or by an older version) still counts; `rm` of a stale manifest must find it.
    """
    folder = layout.manifests_dir
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue
        try:
            if Manifest.load(path).name == name:
                found.append(path)
        except ManifestError:
            continue
    return found


# ---- recording use and verification -----------------------------------------------------------


def update_manifest(model: StoreModel, change: Callable[[Manifest], None]) -> Manifest | None:
    """Re-read the model's manifest, apply `change`, write it back atomically.

    Re-reading right before writing keeps what another process wrote meanwhile. Returns None for
    an unmanaged model; raises ManifestError if the manifest became unreadable, and
    UnsafeStoreError (an OSError) if the store's hidden folder is a link.
    """
    if model.manifest_path is None:
        return None
    # <root>/.gguf-tui/manifests/<name>.json: never rewrite a manifest through a linked folder
    StoreLayout(model.manifest_path.parent.parent.parent).check_hidden()
    manifest = Manifest.load(model.manifest_path)
    change(manifest)
    manifest.save(model.manifest_path)
    return manifest


def record_use(model: StoreModel, when: float | None = None) -> bool:
    """Remember that the model was used now (`path`, which hands it to a runner).

    Only real use counts: looking at a model (`info`) or checking it (`verify`) must not, or a
    nightly verify would make every model "used just now" and LRU pruning would never pick one.
    False if it has no manifest.
    """
    when = time.time() if when is None else when

    def touch(manifest: Manifest) -> None:
        manifest.last_used_at = when

    try:
        return update_manifest(model, touch) is not None
    except (ManifestError, OSError):
        return False


@dataclass
class FileCheck:
    path: str
    ok: bool
    message: str = ""  # why it failed
    sha256: str | None = None


@dataclass
class VerifyResult:
    name: str
    checks: list[FileCheck] = field(default_factory=list)
    verified_at: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "verified_at": self.verified_at,
            "files": [
                {"path": c.path, "ok": c.ok, "message": c.message, "sha256": c.sha256}
                for c in self.checks
            ],
        }


class NothingToVerify(Exception):
    """The model has no recorded SHA-256 (an unmanaged model)."""


# (store-relative path, bytes done, total bytes of that file)
VerifyProgress = Callable[[str, int, int], None]


def verify_model(
    model: StoreModel,
    *,
    progress: VerifyProgress | None = None,
    stop: threading.Event | None = None,
) -> VerifyResult:
    """Re-hash every file against its recorded SHA-256 and record the outcome in the manifest.

    Blocking (run it in a thread from async code); `stop` cancels (raises HashCancelled).
    Success sets each file's verified time, a mismatch marks the file; checking is not a use,
    so the model's last use is left alone.
    """
    if not model.managed:
        raise NothingToVerify(
            f"{model.name} has no recorded SHA-256: adopt it first with 'gguf-tui import'"
        )
    result = VerifyResult(model.name)
    for entry in model.files:
        if not entry.sha256:
            result.checks.append(FileCheck(entry.relative, False, "no recorded SHA-256"))
            continue
        if not entry.path.exists():
            result.checks.append(FileCheck(entry.relative, False, "file is missing"))
            continue
        reporter: HashProgress | None = None
        if progress is not None:
            reporter = (lambda rel: lambda done, total: progress(rel, done, total))(entry.relative)
        try:
            digest = sha256_file(entry.path, progress=reporter, stop=stop)
        except HashCancelled:
            raise
        except OSError as exc:
            message = f"cannot read: {exc.strerror or exc}"
            result.checks.append(FileCheck(entry.relative, False, message))
            continue
        if hmac.compare_digest(digest.encode(), entry.sha256.lower().encode()):
            result.checks.append(FileCheck(entry.relative, True, sha256=digest))
        else:
            result.checks.append(
                FileCheck(
                    entry.relative,
                    False,
                    f"SHA-256 mismatch: expected {entry.sha256[:16]}…, got {digest[:16]}…",
                    sha256=digest,
                )
            )
    now = time.time()
    outcome = {check.path: check for check in result.checks}

    def record(manifest: Manifest) -> None:
        for file_entry in manifest.files:
            check = outcome.get(file_entry.path)
            if check is None or check.sha256 is None:
                continue
            if check.ok:
                file_entry.verified_at = now
                file_entry.verify_failed_at = None
            else:
                file_entry.verify_failed_at = now

    try:
        update_manifest(model, record)
    except (ManifestError, OSError):
        pass  # the result stands; the manifest could not take the record
    if result.ok:
        result.verified_at = now
    return result
