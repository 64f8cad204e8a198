"""Disk usage outside the models: free space, partial downloads, and downloads in progress.

Everything here reads the store's hidden folder only; it never imports the engine (the engine
sits above the store), so the few fields it needs from resume state and queue records are read
from their JSON directly.
"""

from __future__ import annotations

import json
import os
import shutil
import stat as stat_module
from dataclasses import dataclass, field
from pathlib import Path

from gguf_tui.fsutil import load_json_file
from gguf_tui.store.layout import STATE_SUFFIX, StoreLayout
from gguf_tui.store.locks import (
    DownloadLock,
    LockHeld,
    LockOwner,
    deletion_blocker,
    live_job_owners,
)
from gguf_tui.units import format_size


def free_space(root: Path) -> int:
    """Bytes an unprivileged user can still write on the store's filesystem."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 0


def allocated_bytes(stat: os.stat_result) -> int:
    """Space a file really holds (a preallocated partial holds its whole size from the start)."""
    blocks = getattr(stat, "st_blocks", None)
    return blocks * 512 if blocks is not None else stat.st_size


@dataclass
class PartialDownload:
    """One partial download: its `.part` file, its resume state, and who (if anyone) owns it.

    A partial is preallocated to the file's full size, so the space it holds on disk
    (`allocated_bytes`, what deleting it frees) and the bytes already downloaded
    (`downloaded_bytes`, from its resume state) are different numbers and are shown apart.
    """

    key: str
    files: list[Path]
    size: int  # bytes allocated on disk (the same as allocated_bytes; kept for older callers)
    dest: str | None  # store-relative destination, from the resume state
    total: int | None
    bytes_done: int | None
    updated_at: float  # newest mtime of its files
    owner: LockOwner | None = None

    @property
    def abandoned(self) -> bool:
        return self.owner is None

    @property
    def allocated_bytes(self) -> int:
        """Disk space its files hold now: preallocation included; what deleting it frees."""
        return self.size

    @property
    def downloaded_bytes(self) -> int | None:
        """Bytes of the file already downloaded (None when its resume state is unreadable)."""
        return self.bytes_done

    @property
    def reserved_bytes(self) -> int:
        """Space held for bytes still to come (allocated beyond what is downloaded)."""
        return max(0, self.allocated_bytes - (self.bytes_done or 0))

    def describe_size(self) -> str:
        """'15.0 MB downloaded of 134.2 MB, 134.2 MB on disk' - the numbers a user needs."""
        done = "?" if self.bytes_done is None else format_size(self.bytes_done)
        of = f" of {format_size(self.total)}" if self.total else ""
        return f"{done} downloaded{of}, {format_size(self.allocated_bytes)} on disk"

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "files": [str(path) for path in self.files],
            "size": self.size,
            "allocated_bytes": self.allocated_bytes,
            "downloaded_bytes": self.downloaded_bytes,
            "reserved_bytes": self.reserved_bytes,
            "dest": self.dest,
            "total": self.total,
            "bytes_done": self.bytes_done,
            "updated_at": self.updated_at,
            "owner": self.owner.describe() if self.owner else None,
        }


def _partial_key(name: str) -> str:
    # "<key>.part", "<key>.state.json", and temp files ".<key>.state.json.<pid>.tmp"
    return name.lstrip(".").split(".", 1)[0]


def _read_state(folder_fd: int, name: str) -> dict:
    """A resume state's JSON, read inside the partials folder without following a link."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            try:
                raw = json.loads(handle.read(1 << 20))
            except RecursionError:
                raise ValueError("nested too deeply") from None
    finally:
        os.close(fd)
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    return raw


def list_partials(layout: StoreLayout) -> list[PartialDownload]:
    """Every partial download in the store, grouped by resume key, with its live owner.

    A partials folder that is a symlink (or under one) is not read at all: what it points at is
    not the store's.
    """
    try:
        folder_fd = layout.open_hidden_dir(layout.partials_dir)
    except (OSError, ValueError):
        return []  # missing, or unsafe: the commands that change the store refuse it loudly
    try:
        groups: dict[str, list[tuple[Path, os.stat_result]]] = {}
        for name in os.listdir(folder_fd):
            try:
                stat = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            except OSError:
                continue
            if not stat_module.S_ISREG(stat.st_mode):
                continue
            groups.setdefault(_partial_key(name), []).append((layout.partials_dir / name, stat))
        partials = []
        for key, members in sorted(groups.items()):
            dest = total = done = None
            try:
                raw = _read_state(folder_fd, f"{key}{STATE_SUFFIX}")
                dest = raw.get("dest") if isinstance(raw.get("dest"), str) else None
                total = raw.get("total_size") if _is_count(raw.get("total_size")) else None
                done = raw.get("bytes_done") if _is_count(raw.get("bytes_done")) else None
            except (OSError, ValueError):
                pass
            partials.append(
                PartialDownload(
                    key=key,
                    files=sorted(path for path, _ in members),
                    size=sum(allocated_bytes(stat) for _, stat in members),
                    dest=dest,
                    total=total,
                    bytes_done=done,
                    updated_at=max(stat.st_mtime for _, stat in members),
                    owner=deletion_blocker(layout.lock_path(key)),
                )
            )
        return partials
    finally:
        os.close(folder_fd)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def remove_partial(layout: StoreLayout, partial: PartialDownload) -> bool:
    """Delete an abandoned partial and its state while holding its lock; False if now owned.

    An owner process that still exists on this host is respected even when its heartbeat is
    old (a stale-by-time lock of a live download must not lose its partial). Files are unlinked
    by name inside the partials folder reached without following links (UnsafeStoreError if
    the hidden folder is a link), so nothing outside the store can be deleted.
    """
    layout.check_hidden()
    if deletion_blocker(layout.lock_path(partial.key)) is not None:
        return False
    lock = DownloadLock(layout.lock_path(partial.key), what="prune")
    try:
        lock.acquire()
    except LockHeld:
        return False
    try:
        folder_fd = layout.open_hidden_dir(layout.partials_dir)
        try:
            for path in partial.files:
                if path.parent != layout.partials_dir:
                    continue  # never anything but a name inside the partials folder
                try:
                    stat = os.stat(path.name, dir_fd=folder_fd, follow_symlinks=False)
                    if stat_module.S_ISDIR(stat.st_mode):
                        continue
                    os.unlink(path.name, dir_fd=folder_fd)
                except FileNotFoundError:
                    pass
        finally:
            os.close(folder_fd)
    finally:
        lock.release()
    return True


@dataclass
class JobRecord:
    """A download the engine has queued or paused (`.gguf-tui/jobs/`): its name and targets."""

    name: str
    dests: list[str] = field(default_factory=list)


def job_records(layout: StoreLayout) -> list[JobRecord]:
    folder = layout.jobs_dir
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            raw = load_json_file(path)
            dests = [str(entry["dest"]) for entry in raw["files"]]
            records.append(JobRecord(str(raw["name"]), dests))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return records


@dataclass
class ActiveDownloads:
    """Store paths a download in progress (in any process) owns right now."""

    owners: dict[str, LockOwner] = field(default_factory=dict)  # dest -> owner of that file
    jobs: dict[str, str] = field(default_factory=dict)  # dest -> name of a running job
    queued: dict[str, LockOwner] = field(default_factory=dict)  # dest -> owner of its queued job

    def owner_of(self, relative: str) -> LockOwner | None:
        return self.owners.get(relative)

    def busy_reason(self, relative: str) -> str | None:
        owner = self.owners.get(relative)
        if owner is not None:
            user = f"user {owner.user_name}, " if owner.other_user else ""
            return f"a download in progress is writing it ({user}{owner.describe()})"
        if relative in self.jobs:
            return f"it belongs to '{self.jobs[relative]}', which is downloading"
        queued = self.queued.get(relative)
        if queued is not None:
            return (
                f"it belongs to '{queued.what}', which is {queued.state or 'queued'} in the queue "
                f"of {queued.who()}: cancel that download first"
            )
        return None


def active_downloads(
    layout: StoreLayout, records: list[JobRecord] | None = None
) -> ActiveDownloads:
    """Which store files are being written: a live lock's `what`, and its job's other files."""
    active = ActiveDownloads()
    lock_files = sorted(layout.locks_dir.glob("*.lock")) if layout.locks_dir.is_dir() else []
    for path in lock_files:
        owner = deletion_blocker(path)
        if owner is None:
            continue
        if owner.what:
            active.owners[owner.what] = owner
    # A download some process holds in its queue (queued, paused or waiting) owns its files too.
    in_queues = {
        owner.what: owner
        for owner in live_job_owners(layout.locks_dir)
        if owner.state not in ("failed", "cancelled", "completed")
    }
    if active.owners or in_queues:
        for record in job_records(layout) if records is None else records:
            if any(dest in active.owners for dest in record.dests):
                for dest in record.dests:
                    active.jobs.setdefault(dest, record.name)
            if record.name in in_queues:
                for dest in record.dests:
                    active.queued.setdefault(dest, in_queues[record.name])
    return active

