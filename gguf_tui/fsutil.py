"""Small filesystem helpers shared by the engine and the store: atomic JSON, safe reads."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any


# ---- modes in a store shared by a group ------------------------------------------------------
#
# One rule for everything gguf-tui creates in a store: an entry created inside a group-shared
# folder (setgid and group-writable, as `chmod 2775` makes it) gives its group what its owner
# has. Directories inherit the group and the setgid bit from such a parent (the kernel does
# that); the group's write bit needs an explicit chmod because the usual umask (022) strips it.
# Elsewhere nothing changes: modes are what they were, less the umask.


def group_shared(folder: str | os.PathLike[str]) -> bool:
    """Whether new entries in `folder` belong to its group too: a setgid, group-writable folder."""
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return bool(mode & stat.S_ISGID and mode & stat.S_IWGRP)


def _group_bits(requested: int) -> int:
    """The owner's bits of `requested`, given to the group."""
    return (requested & 0o700) >> 3


def share_new_file(fd: int, folder: str | os.PathLike[str], requested: int) -> None:
    """Give the group the owner's bits of a file just opened in `folder`, if that folder is
    group-shared and the file is ours (another user's file is left as its owner made it)."""
    if not group_shared(folder):
        return
    opened = os.fstat(fd)
    if opened.st_uid != os.geteuid():
        return
    wanted = (opened.st_mode & 0o7777) | _group_bits(requested)
    if wanted != opened.st_mode & 0o7777:
        os.fchmod(fd, wanted)


def share_new_folder(folder: str | os.PathLike[str]) -> None:
    """Make a folder of ours group-shared (setgid, group rwx) if its parent is."""
    path = Path(folder)
    if not group_shared(path.parent):
        return
    current = os.stat(path, follow_symlinks=False)
    if current.st_uid != os.geteuid() or not stat.S_ISDIR(current.st_mode):
        return
    wanted = (current.st_mode & 0o7777) | stat.S_ISGID | stat.S_IRWXG
    if wanted != current.st_mode & 0o7777:
        os.chmod(path, wanted)


def make_folders(path: str | os.PathLike[str]) -> None:
    """`mkdir -p`, where each folder created inside a group-shared folder is group-shared too."""
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue  # made meanwhile by another process: its maker set its mode
        share_new_folder(folder)
    if not missing and not path.is_dir():
        os.mkdir(path)  # raises FileExistsError (a file, a dangling link) as mkdir -p does


def create_file(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """`os.open(path, flags | O_CREAT, mode)` under the store's sharing rule (`share_new_file`)."""
    return _shared_or_closed(os.open(path, flags | os.O_CREAT, mode), path, mode)


def _shared_or_closed(fd: int, path: str | os.PathLike[str], mode: int) -> int:
    """`fd` after the sharing rule applied to it; closed (not leaked) if that fails."""
    try:
        share_new_file(fd, Path(path).parent, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def state_file_mode(root: Path) -> int:
    """Mode of private state files (resume state, queue records): 0600, or 0660 in a shared
    store (a setgid, group-writable root), whose group must be able to resume them."""
    return 0o660 if group_shared(root) else 0o600


def write_bytes_atomic(
    path: Path, payload: bytes, mode: int | None = None, *, durable: bool = True
) -> None:
    """Write a small file so readers see the old or the new one, never half of one.

    `mode` is set exactly (whatever the umask) when given, else 0644 less the umask; in a
    group-shared folder the group also gets the owner's bits. `durable` fsyncs before the rename.
    """
    make_folders(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags | os.O_CREAT, 0o644 if mode is None else mode & 0o600)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        share_new_file(fd, path.parent, 0o644 if mode is None else mode)
        written = os.write(fd, payload)
        if written != len(payload):
            raise OSError(28, "No space left on device", str(tmp))
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict, mode: int | None = None) -> None:
    """Write JSON atomically and durably (`write_bytes_atomic`: its modes, its sharing rule)."""
    write_bytes_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode(), mode)


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


# ---- reading files that must be regular ---------------------------------------------------------

# Small state files (manifests, queue records, resume states, lock owners) are read whole; a
# sparse or hostile one bigger than this is refused instead of loaded into memory.
MAX_STATE_FILE_BYTES = 16 * 1024 * 1024

_NOT_REGULAR_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symlink"),
)


def file_kind(mode: int) -> str:
    """What a stat mode is, in words: 'a regular file', 'a FIFO', 'a directory', ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _NOT_REGULAR_KINDS if test(mode)), "not a file")


class NotRegularFileError(OSError):
    """A FIFO, socket, device, directory (or a refused symlink) where a regular file must be."""

    def __init__(self, path: str | os.PathLike[str], mode: int) -> None:
        code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
        super().__init__(code, f"not a regular file ({file_kind(mode)})", os.fspath(path))


def open_regular(
    path: str | os.PathLike[str],
    *,
    noatime: bool = False,
    follow_symlinks: bool = True,
    dir_fd: int | None = None,
) -> int:
    """A blocking read-only fd on `path`, which must be a regular file (else NotRegularFileError).

    Reading a FIFO blocks until a writer comes, and opening a device can have side effects, so
    the type is checked by name first, the open is non-blocking (a FIFO swapped in meanwhile
    does not hang it) and the type is checked again on the fd itself. `noatime` leaves the
    access time alone where the kernel allows (the file's owner); `follow_symlinks=False` refuses
    a symlink at `path` (O_NOFOLLOW).
    """
    before = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFileError(path, before.st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = -1
    noatime_flag = getattr(os, "O_NOATIME", 0) if noatime else 0
    if noatime_flag:
        try:
            fd = os.open(path, flags | noatime_flag, dir_fd=dir_fd)
        except PermissionError:
            pass  # O_NOATIME needs ownership; another user's file is read normally
    if fd < 0:
        fd = os.open(path, flags, dir_fd=dir_fd)
    return _regular_and_blocking(fd, path)


def _regular_and_blocking(fd: int, path: str | os.PathLike[str]) -> int:
    """`fd`, made blocking, if it is a regular file; else closed and NotRegularFileError."""
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotRegularFileError(path, opened.st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_for_writing(path: str | os.PathLike[str], mode: int = 0o644) -> int:
    """A read-write fd on `path`, created if missing, which must be a regular file of its own.

    A symlink planted where a partial download belongs would make the engine write through it
    (outside the store), and a FIFO would block the open: O_NOFOLLOW refuses the first, and the
    non-blocking open plus the fstat check refuse anything that is not a regular file.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFileError(path, stat.S_IFLNK) from None
        raise
    fd = _regular_and_blocking(fd, path)
    # In a shared store another user may resume this partial, and it becomes the model file.
    return _shared_or_closed(fd, path, mode)


def read_regular_bytes(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_STATE_FILE_BYTES
) -> bytes:
    """The whole content of a small regular file; OSError for anything else or a bigger one."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            message = f"file too large ({size} bytes, limit {max_bytes})"
            raise OSError(errno.EFBIG, message, os.fspath(path))
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:  # it grew while being read
            raise OSError(errno.EFBIG, f"file too large (limit {max_bytes} bytes)", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular_text(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_STATE_FILE_BYTES
) -> str:
    """`read_regular_bytes` decoded as UTF-8 (UnicodeDecodeError, a ValueError, if it is not)."""
    return read_regular_bytes(path, max_bytes=max_bytes).decode("utf-8")


class StateJSONError(ValueError):
    """A small state file (manifest, resume state, record, lock) that is not usable JSON."""


def load_json_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_STATE_FILE_BYTES) -> Any:
    """A state file's JSON, read through `read_regular_text`.

    Every way its content can be unusable (not UTF-8, not JSON, nested deeper than the parser's
    recursion limit: a tampered file must not crash a command) is one `StateJSONError`, a
    `ValueError`, so callers that already treat a bad file as "unreadable" need nothing more.
    """
    text = read_regular_text(path, max_bytes=max_bytes)
    try:
        return json.loads(text)
    except RecursionError:
        raise StateJSONError("nested too deeply") from None
    except ValueError as exc:
        raise StateJSONError(f"not valid JSON ({exc})") from None


class LinkInTheWay(OSError):
    """A symlink (or a non-folder) where `open_folder_nofollow` needed a folder."""

    def __init__(self, part: str) -> None:
        super().__init__(errno.ELOOP, f"'{part}' is a symlink or not a folder")
        self.part = part


def open_folder_nofollow(root: str | os.PathLike[str], parts: tuple[str, ...] | list[str]) -> int:
    """An fd of `root/parts...`, each part opened relative to the last with O_NOFOLLOW.

    Nothing below `root` is reached through a symlink, whatever another user planted there: the
    first part that is a link or not a folder raises LinkInTheWay naming it.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            try:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise LinkInTheWay(part) from None
                raise
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd

