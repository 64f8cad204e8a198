"""Download ownership across processes and users sharing one store.

A lock is a file created with O_EXCL holding the owner's pid, host, process start identity and a
heartbeat time. It works where flock() silently does nothing (NFS, some container mounts). A lock
whose owner is dead (same host, pid gone or reused by a process that started later) or whose
heartbeat is older than STALE_AFTER seconds is taken over.

Two kinds share this machinery: a download lock (`<key>.lock`, held while one file is written)
and a job owner lock (`<model>.owner`, held while a download is in one process's queue, queued,
running or paused, and naming the resume keys of its files). Deleting a partial respects both.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from gguf_tui.fsutil import create_file, load_json_file, make_folders, write_bytes_atomic

STALE_AFTER = 180.0
HEARTBEAT_EVERY = 15.0
OWNER_SUFFIX = ".owner"


def process_start_id(pid: int) -> str | None:
    """Boot id plus the process's start time in clock ticks (Linux), or None where unknown.

    A pid alone is not an identity: after an owner dies its pid may be given to another process,
    which must not keep the dead owner's downloads locked."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None  # field 22: starttime


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    heartbeat: float
    started: float
    what: str = ""
    proc_start: str | None = None  # process_start_id() of the owner when it took the lock
    state: str = ""  # a job owner's word for its job: queued, downloading, paused, ...
    keys: tuple[str, ...] = ()  # a job owner lock's resume keys (its files' partials)
    token: str = ""  # which engine in the owner process holds it
    uid: int | None = None  # the owning process's user (None: a lock written before uids were)
    user: str = ""  # that user's name, as the owner's host knew it

    def describe(self) -> str:
        age = max(0, int(time.time() - self.heartbeat))
        return f"pid {self.pid} on {self.host}, alive {age} s ago"

    def who(self) -> str:
        """'pid N on HOST', with 'user NAME, ' first when another user owns it."""
        user = f"user {self.user_name}, " if self.other_user else ""
        return f"{user}pid {self.pid} on {self.host}"

    @property
    def label(self) -> str:
        """How its job is shown to other processes: 'downloading (user alice)' when another user
        owns it, else 'downloading elsewhere' (the owner's word for its job first)."""
        word = self.state or "downloading"
        return f"{word} (user {self.user_name})" if self.other_user else f"{word} elsewhere"

    @property
    def in_this_process(self) -> bool:
        return self.pid == os.getpid() and self.host == socket.gethostname()

    @property
    def other_user(self) -> bool:
        """Owned by another user of this box (or of the shared filesystem) than this process's."""
        return self.uid is not None and self.uid != os.geteuid()

    @property
    def user_name(self) -> str:
        """The owner's user name (its uid where no name is known)."""
        return self.user or (user_name(self.uid) if self.uid is not None else "?")


def user_name(uid: int) -> str:
    """The name of user `uid` on this box, or the number itself where it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


class LockHeld(Exception):
    """Another live process owns the download."""

    def __init__(self, owner: LockOwner) -> None:
        super().__init__(f"{owner.label} ({owner.describe()})")
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
        raw = load_json_file(path)
        uid = raw.get("uid")
        return LockOwner(
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            heartbeat=float(raw["heartbeat"]),
            started=float(raw.get("started", raw["heartbeat"])),
            what=str(raw.get("what", "")),
            proc_start=str(raw["proc_start"]) if raw.get("proc_start") else None,
            state=str(raw.get("state", "")),
            keys=tuple(str(key) for key in raw.get("keys") or ()),
            token=str(raw.get("token", "")),
            uid=None if uid is None else int(uid),
            user=str(raw.get("user") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _owner_process_alive(owner: LockOwner) -> bool:
    """On this host: the owner's pid exists and is still the process that took the lock."""
    if not _pid_alive(owner.pid):
        return False
    if owner.proc_start is None:
        return True  # written where no start identity is known: the pid is all there is
    current = process_start_id(owner.pid)
    return current is None or current == owner.proc_start


def is_stale(owner: LockOwner | None, path: Path, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if owner is None:
        # Unreadable: a writer may be mid-create; only stale once the file itself is old.
        try:
            return now - path.stat().st_mtime > 5.0
        except FileNotFoundError:
            return True
    if owner.host == socket.gethostname() and not _owner_process_alive(owner):
        return True
    return now - owner.heartbeat > STALE_AFTER


class DownloadLock:
    """Ownership of one download (by resume key hash), or of one queued job, for this process."""

    def __init__(
        self,
        path: Path,
        what: str = "",
        *,
        keys: tuple[str, ...] = (),
        state: str = "",
        token: str = "",
        live_pid_holds: bool = False,
    ) -> None:
        self.path = path
        # A job owner lock: a live owner on this host keeps it however old its heartbeat (a
        # suspended or busy dashboard still owns its queue); only its exit or death frees it.
        self.live_pid_holds = live_pid_holds
        self.what = what
        self.keys = keys
        self.state = state
        self.token = token
        self.started = time.time()
        self.last_beat = 0.0
        self.held = False

    def _payload(self) -> bytes:
        payload: dict = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "proc_start": _own_start_id(),
            "heartbeat": time.time(),
            "started": self.started,
            "what": self.what,
            "uid": os.geteuid(),
            "user": _own_user_name(),
        }
        if self.keys:
            payload["keys"] = list(self.keys)
        if self.state:
            payload["state"] = self.state
        if self.token:
            payload["token"] = self.token
        return json.dumps(payload).encode()

    def set_state(self, state: str) -> None:
        """Tell other processes what the owned job is doing now (written at once)."""
        if state != self.state:
            self.state = state
            self.heartbeat(force=True)

    def acquire(self) -> None:
        """Take the lock or raise LockHeld; stale locks are taken over."""
        make_folders(self.path.parent)
        for _ in range(3):
            try:
                fd = create_file(self.path, os.O_WRONLY | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = read_owner(self.path)
                if owner and owner.in_this_process and _owner_process_alive(owner):
                    raise LockHeld(owner) from None  # another job of ours holds it
                if self.live_pid_holds and owner and owner_may_be_alive(owner):
                    raise LockHeld(owner) from None
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
        current = read_owner(self.path)
        if current is not None and not (current.in_this_process and current.token == self.token):
            self.held = False  # taken over meanwhile: never write over the new owner's lock
            return
        try:
            write_bytes_atomic(self.path, self._payload(), durable=False)
            self.last_beat = now
        except OSError:
            pass

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = read_owner(self.path)
        if owner and owner.in_this_process and owner.token == self.token:
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
        return _owner_process_alive(owner)
    return time.time() - owner.heartbeat <= STALE_AFTER


def _lock_blocker(path: Path) -> LockOwner | None:
    if not path.exists():
        return None
    owner = read_owner(path)
    if owner is None:
        return None if is_stale(None, path) else LockOwner(0, "?", time.time(), time.time())
    return owner if owner_may_be_alive(owner) else None


def deletion_blockers(path: Path) -> list[LockOwner]:
    """Every live owner that deleting the partial of download lock `path` must respect: the
    process writing it, and each process whose queue holds a job with that file (queued, running
    or paused there: its partial is that job's progress)."""
    blockers = []
    writer = _lock_blocker(path)
    if writer is not None:
        blockers.append(writer)
    key = path.name.removesuffix(path.suffix)
    blockers.extend(owner for owner in live_job_owners(path.parent) if key in owner.keys)
    return blockers


def live_job_owners(locks_dir: Path) -> list[LockOwner]:
    """The job owner locks in `locks_dir` whose process may still be alive: one per download in
    some process's queue (its `what` is the model name, its `keys` the files' resume keys)."""
    owners = []
    for path in sorted(locks_dir.glob(f"*{OWNER_SUFFIX}")) if locks_dir.is_dir() else []:
        owner = read_owner(path)
        if owner is not None and owner_may_be_alive(owner):
            owners.append(owner)
    return owners


def deletion_blocker(path: Path) -> LockOwner | None:
    """The first owner that deleting the download's files (lock `path`) must respect, if any."""
    blockers = deletion_blockers(path)
    return blockers[0] if blockers else None


_START_IDS: dict[int, str | None] = {}
_USER_NAMES: dict[int, str] = {}


def _own_user_name() -> str:
    """This process's user name, looked up once per uid."""
    uid = os.geteuid()
    if uid not in _USER_NAMES:
        _USER_NAMES[uid] = user_name(uid)
    return _USER_NAMES[uid]


def _own_start_id() -> str | None:
    """This process's start identity, read once per pid (a forked child has its own)."""
    pid = os.getpid()
    if pid not in _START_IDS:
        _START_IDS[pid] = process_start_id(pid)
    return _START_IDS[pid]
