"""Where the engine service's socket, lock and log live, and the checks that make them safe.

One service per user and store root: the socket's name carries a hash of the store root. The
socket lives in `$XDG_RUNTIME_DIR/gguf-tui/` (else `/tmp/gguf-tui-<uid>/`), a directory this
user owns, that is not a symlink and that nobody else can enter; anything else is refused,
because another user who controls the directory could stand in for the service.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class RuntimeDirError(Exception):
    """The runtime directory is unsafe or cannot be made: one line saying what to do."""


@dataclass(frozen=True)
class ServicePaths:
    """The files of the service for one store root."""

    runtime_dir: Path
    socket: Path
    lock: Path
    log: Path


def store_key(store: Path) -> str:
    """A short stable name for a store root (its absolute path hashed)."""
    return hashlib.sha256(str(Path(store).absolute()).encode()).hexdigest()[:12]


def runtime_base(environ: dict[str, str] | None = None) -> Path:
    """`$XDG_RUNTIME_DIR/gguf-tui`, else a per-user folder under the temp dir."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "gguf-tui"
    return Path(tempfile.gettempdir()) / f"gguf-tui-{os.getuid()}"


def state_dir(environ: dict[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/gguf-tui` (default `~/.local/state/gguf-tui`): the service's log."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "gguf-tui"


def service_paths(store: Path, environ: dict[str, str] | None = None) -> ServicePaths:
    """The paths for `store`'s service; nothing is created or checked here."""
    base = runtime_base(environ)
    key = store_key(store)
    return ServicePaths(
        runtime_dir=base,
        socket=base / f"engine-{key}.sock",
        lock=base / f"engine-{key}.lock",
        log=state_dir(environ) / f"engine-{key}.log",
    )


def check_runtime_dir(path: Path) -> None:
    """Refuse a runtime dir that is a symlink, not a directory, someone else's, or open to others."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise RuntimeDirError(f"{path} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise RuntimeDirError(
            f"refusing {path}: it is a symlink; remove it (or set XDG_RUNTIME_DIR to a private folder)"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"refusing {path}: it is not a directory; remove it")
    if info.st_uid != os.getuid():
        raise RuntimeDirError(
            f"refusing {path}: it belongs to uid {info.st_uid}, not you; "
            "set XDG_RUNTIME_DIR to a folder of your own"
        )
    if info.st_mode & 0o077:
        raise RuntimeDirError(
            f"refusing {path}: others can enter it (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run 'chmod 700 {path}'"
        )


def ensure_runtime_dir(paths: ServicePaths) -> None:
    """Create the runtime dir 0700 when missing, then check it; RuntimeDirError otherwise."""
    try:
        os.mkdir(paths.runtime_dir, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimeDirError(
            f"cannot create the engine's runtime folder {paths.runtime_dir}: {exc.strerror}; "
            "set XDG_RUNTIME_DIR to a writable folder, or use --local"
        ) from None
    check_runtime_dir(paths.runtime_dir)
    if not os.access(paths.runtime_dir, os.W_OK | os.X_OK):
        raise RuntimeDirError(
            f"cannot write the engine's runtime folder {paths.runtime_dir}; "
            "set XDG_RUNTIME_DIR to a writable folder, or use --local"
        )
    if len(os.fsencode(paths.socket)) > SOCKET_PATH_MAX:
        raise RuntimeDirError(
            f"the engine's socket path is too long for a Unix socket ({paths.socket}); "
            "set XDG_RUNTIME_DIR to a shorter folder"
        )
