"""Download ownership across processes and users sharing one store.

A lock is a file created with O_EXCL holding the owner's pid, host and a heartbeat time. It works
where flock() silently does nothing (NFS, some container mounts). A lock whose owner is dead (same
host, pid gone) or whose heartbeat is older than STALE_AFTER seconds is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from gguf_tui.fsutil import read_regular_text

STALE_AFTER = 180.0
HEARTBEAT_EVERY = 15.0


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    heartbeat: float
    started: float
    what: str = ""

    def describe(self) -> str:
        age = max(0, int(time.time() - self.heartbeat))
        return f"pid {self.pid} on {self.host}, alive {age} s ago"


class LockHeld(Exception):
    """Another live process owns the download."""

    def __init__(self, owner: LockOwner) -> None:
        super().__init__(f"downloading elsewhere ({owner.describe()})")
        self.owner = owner


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def read_owner(path: Path) -> LockOwner | None:
    try:
        raw = json.loads(read_regular_text(path))
        return LockOwner(
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            heartbeat=float(raw["heartbeat"]),
            started=float(raw.get("started", raw["heartbeat"])),
            what=str(raw.get("what", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(owner: LockOwner | None, path: Path, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if owner is None:
        # Unreadable: a writer may be mid-create; only stale once the file itself is old.
        try:
            return now - path.stat().st_mtime > 5.0
        except FileNotFoundError:
            return True
    if owner.host == socket.gethostname() and not _pid_alive(owner.pid):
        return True
    return now - owner.heartbeat > STALE_AFTER


class DownloadLock:
    """Ownership of one download (by resume key hash) for this process."""

    def __init__(self, path: Path, what: str = "") -> None:
        self.path = path
        self.what = what
        self.started = time.time()
        self.last_beat = 0.0
        self.held = False

    def _payload(self) -> bytes:
        return json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "heartbeat": time.time(),
                "started": self.started,
                "what": self.what,
            }
        ).encode()

    def acquire(self) -> None:
        """Take the lock or raise LockHeld; stale locks are taken over."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = read_owner(self.path)
                if owner and owner.pid == os.getpid() and owner.host == socket.gethostname():
                    raise LockHeld(owner) from None  # another job of ours holds it
                if not is_stale(owner, self.path):
                    if owner is None:
                        raise LockHeld(LockOwner(0, "?", time.time(), time.time())) from None
                    raise LockHeld(owner) from None
                self._take_over(owner)
                continue
            try:
                os.write(fd, self._payload())
            finally:
                os.close(fd)
            self.held = True
            self.last_beat = time.time()
            return
        owner = read_owner(self.path)
        raise LockHeld(owner or LockOwner(0, "?", time.time(), time.time()))

    def _take_over(self, stale_owner: LockOwner | None) -> None:
        # Rename the stale lock aside (atomic; only one contender wins), then check we moved the
        # lock we judged stale and not a fresh one another process just created.
        tombstone = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
        try:
            os.rename(self.path, tombstone)
        except FileNotFoundError:
            return
        moved = read_owner(tombstone)
        if stale_owner is not None and moved != stale_owner:
            try:
                os.link(tombstone, self.path)  # put the live lock back unless a new one exists
            except OSError:
                pass
        try:
            tombstone.unlink()
        except FileNotFoundError:
            pass

    def heartbeat(self, force: bool = False) -> None:
        if not self.held:
            return
        now = time.time()
        if not force and now - self.last_beat < HEARTBEAT_EVERY:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(self._payload())
            os.replace(tmp, self.path)
            self.last_beat = now
        except OSError:
            pass

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = read_owner(self.path)
        if owner and owner.pid == os.getpid() and owner.host == socket.gethostname():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def active_lock_owner(path: Path) -> LockOwner | None:
    """The live owner of a lock file, or None if free or stale."""
    if not path.exists():
        return None
    owner = read_owner(path)
    if is_stale(owner, path):
        return None
    return owner


def owner_may_be_alive(owner: LockOwner) -> bool:
    """Conservative liveness for deleting: on this host, any owner whose pid still exists counts
    as alive whatever its heartbeat says; on another host, a heartbeat within STALE_AFTER."""
    if owner.host == socket.gethostname():
        return _pid_alive(owner.pid)
    return time.time() - owner.heartbeat <= STALE_AFTER


def deletion_blocker(path: Path) -> LockOwner | None:
    """The owner of a lock file that deleting its download's files must respect, if any."""
    if not path.exists():
        return None
    owner = read_owner(path)
    if owner is None:
        return None if is_stale(None, path) else LockOwner(0, "?", time.time(), time.time())
    return owner if owner_may_be_alive(owner) else None
