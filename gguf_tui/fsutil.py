"""Small filesystem helpers shared by the engine and the store."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path


def state_file_mode(root: Path) -> int:
    """Mode of private state files (resume state, queue records): 0600, or 0660 in a shared
    store (a setgid, group-writable root), whose group must be able to resume them."""
    try:
        root_mode = os.stat(root).st_mode
    except OSError:
        return 0o600
    shared = root_mode & stat.S_ISGID and root_mode & stat.S_IWGRP
    return 0o660 if shared else 0o600


def write_json_atomic(path: Path, data: dict, mode: int | None = None) -> None:
    """Write JSON so readers see the old or the new file, never half of one; `mode` set exactly
    (whatever the umask) when given, else 0644 less the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = json.dumps(data, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644 if mode is None else mode & 0o600)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        written = os.write(fd, payload)
        if written != len(payload):
            raise OSError(28, "No space left on device", str(tmp))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (best effort where directories can't fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
