"""Live changes to the store's models, for the TUI: an async iterator over `StoreChange`s.

Built on watchfiles (inotify where available). It ignores the store's hidden `.gguf-tui/`
folder (partials, resume state, locks, queue records) and other dot-files, and it waits out
partial writes: a file counts as added once it is a complete GGUF whose size and mtime have been
stable for `settle` seconds. A rename by hand (delete + create of the same inode) is one
"renamed" change; a whole folder moved in or out gives one change per GGUF file in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat as stat_module
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from watchfiles import Change, awatch

from gguf_tui.fsutil import make_folders
from gguf_tui.store.fileio import is_complete_gguf
from gguf_tui.store.layout import HIDDEN_DIR_NAME
from gguf_tui.store.scan import walk_gguf

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"
RENAMED = "renamed"
MANIFEST = "manifest"  # only with include_manifests=True
PARTIALS = "partials"  # only with include_partials=True: a partial download or its state changed


@dataclass(frozen=True)
class StoreChange:
    kind: str  # added, removed, changed, renamed, manifest
    path: Path  # absolute
    old_path: Path | None = None  # for "renamed"

    def relative_to(self, root: Path) -> str:
        return self.path.relative_to(root).as_posix()


@dataclass(frozen=True)
class _Sig:
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _Sig | None:
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat_module.S_ISREG(st.st_mode):
            return None
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _Pending:
    sig: _Sig
    first_seen: float
    stable_since: float
    checked_at: float = 0.0


class _StoreState:
    """What the watcher knows, and the changes it is still waiting to confirm."""

    def __init__(self, root: Path, settle: float, rename_window: float, incomplete_grace: float):
        self.root = root
        self.settle = settle
        self.rename_window = rename_window
        self.incomplete_grace = incomplete_grace
        self.known: dict[Path, _Sig] = {}
        self.adding: dict[Path, _Pending] = {}
        self.removing: dict[Path, tuple[_Sig, float]] = {}
        for relative in walk_gguf(root):
            sig = _Sig.of(root / relative)
            if sig is not None:
                self.known[root / relative] = sig

    def interesting(self, path: Path) -> bool:
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return False
        return bool(parts) and not any(part.startswith(".") for part in parts)

    def note(self, change: Change, path: Path, now: float) -> None:
        """Take one raw filesystem change into account."""
        if path.is_dir() and not path.is_symlink():
            if change == Change.added:  # a folder moved in: inotify says nothing of its files
                for relative in walk_gguf(path):
                    self._candidate(path / relative, now)
            return
        if change == Change.deleted or not os.path.lexists(path):
            self._vanished(path, now)
            return
        if path.name.lower().endswith(".gguf"):
            self._candidate(path, now)

    def _candidate(self, path: Path, now: float) -> None:
        sig = _Sig.of(path)
        if sig is None:
            return
        pending = self.adding.get(path)
        if pending is None or pending.sig != sig:
            first = pending.first_seen if pending else now
            self.adding[path] = _Pending(sig, first, now)

    def _vanished(self, path: Path, now: float) -> None:
        self.adding.pop(path, None)
        prefix = str(path) + os.sep
        for known_path, sig in list(self.known.items()):
            if known_path == path or str(known_path).startswith(prefix):
                self.removing.setdefault(known_path, (sig, now))
        for pending_path in [p for p in self.adding if str(p).startswith(prefix)]:
            del self.adding[pending_path]

    def due(self, now: float) -> list[StoreChange]:
        """Changes that are settled now."""
        changes: list[StoreChange] = []
        for path, pending in list(self.adding.items()):
            sig = _Sig.of(path)
            if sig is None:
                del self.adding[path]
                if path in self.known:
                    self.removing.setdefault(path, (self.known[path], now))
                continue
            if sig != pending.sig:
                pending.sig, pending.stable_since = sig, now
                continue
            renamed_from = self._renamed_from(sig)
            if renamed_from is not None:
                del self.adding[path]
                del self.removing[renamed_from]
                self.known.pop(renamed_from, None)
                self.known[path] = sig
                changes.append(StoreChange(RENAMED, path, renamed_from))
                continue
            if now - pending.stable_since < self.settle:
                continue
            if self.known.get(path) == sig:
                del self.adding[path]  # touched, not changed
                self.removing.pop(path, None)
                continue
            if now - pending.checked_at < self.settle:
                continue
            pending.checked_at = now
            if not is_complete_gguf(path) and now - pending.first_seen < self.incomplete_grace:
                continue  # still being written (or broken: reported after the grace period)
            del self.adding[path]
            replaced = self.removing.pop(path, None)
            kind = CHANGED if path in self.known or replaced else ADDED
            self.known[path] = sig
            changes.append(StoreChange(kind, path))
        for path, (sig, since) in list(self.removing.items()):
            if now - since < self.rename_window:
                continue
            del self.removing[path]
            current = _Sig.of(path)
            if current is not None:
                self._candidate(path, now)  # replaced in place: confirm it like an addition
                continue
            self.known.pop(path, None)
            changes.append(StoreChange(REMOVED, path))
        return changes

    def _renamed_from(self, sig: _Sig) -> Path | None:
        for old_path, (old_sig, _since) in self.removing.items():
            if (old_sig.dev, old_sig.ino, old_sig.size) == (sig.dev, sig.ino, sig.size):
                return old_path
        return None

    @property
    def busy(self) -> bool:
        return bool(self.adding or self.removing)


async def watch_store(
    root: Path,
    stop_event: asyncio.Event | None = None,
    *,
    settle: float = 0.5,
    rename_window: float = 0.3,
    incomplete_grace: float = 10.0,
    include_manifests: bool = False,
    include_partials: bool = False,
    force_polling: bool | None = None,
) -> AsyncIterator[StoreChange]:
    """Yield changes to the store's models until `stop_event` is set (or the caller stops).

    `settle`: seconds a new or modified file's size and mtime must stay the same before it is
    reported (and it must be a complete GGUF, or have stayed incomplete for `incomplete_grace`).
    `include_manifests`: also yield a "manifest" change when a manifest is written or removed
    (another process finished a download, verified or deleted a model).
    `include_partials`: also yield one "partials" change per batch of writes to the partial
    downloads folder (a download of any process started, progressed, paused or was removed).
    """
    root = Path(os.path.abspath(root))
    make_folders(root)
    stop_event = stop_event or asyncio.Event()
    manifests = root / HIDDEN_DIR_NAME / "manifests"
    partials = root / HIDDEN_DIR_NAME / "partials"
    state = _StoreState(root, settle, rename_window, incomplete_grace)
    raw: asyncio.Queue[set[tuple[Change, str]]] = asyncio.Queue()
    watcher_stop = asyncio.Event()

    def wanted(_change: Change, path: str) -> bool:
        candidate = Path(path)
        if include_manifests and candidate.parent == manifests and candidate.suffix == ".json":
            return not candidate.name.startswith(".")
        if include_partials and candidate.parent == partials:
            return True
        return state.interesting(candidate)

    async def pump() -> None:
        async for batch in awatch(
            root,
            watch_filter=wanted,
            step=50,
            debounce=400,
            stop_event=watcher_stop,  # type: ignore[arg-type]
            force_polling=force_polling,
            rust_timeout=500,
            ignore_permission_denied=True,
        ):
            raw.put_nowait(batch)

    pump_task = asyncio.ensure_future(pump())
    stop_wait = asyncio.ensure_future(stop_event.wait())
    tick = 0.1
    try:
        while not stop_event.is_set():
            get = asyncio.ensure_future(raw.get())
            done, _ = await asyncio.wait(
                {get, stop_wait, pump_task},
                timeout=tick if state.busy else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if pump_task in done:
                get.cancel()
                pump_task.result()  # re-raise what stopped the watcher
                return
            if get in done:
                batch = get.result()
                now = time.monotonic()
                touched: list[Path] = []
                partials_touched = False
                for change, path_text in sorted(batch, key=lambda item: item[0] != Change.deleted):
                    path = Path(path_text)
                    if path.parent == partials:
                        partials_touched = True
                        continue
                    if path.parent == manifests:
                        if path not in touched:
                            touched.append(path)
                        continue
                    state.note(change, path, now)
                for path in touched:
                    yield StoreChange(MANIFEST, path)
                if partials_touched:
                    yield StoreChange(PARTIALS, partials)
            else:
                get.cancel()
            for change in state.due(time.monotonic()):
                yield change
    finally:
        watcher_stop.set()
        stop_wait.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(pump_task, timeout=2.0)
        if not pump_task.done():
            pump_task.cancel()
