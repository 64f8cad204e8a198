"""Duplicates across every store on the box, and replacing extra copies with hard links.

Two files are the same model when their size and SHA-256 match. A SHA-256 the layout gives for
free (an HF LFS blob's name, an Ollama digest, our manifest) groups files without reading them;
any other file is hashed once and remembered by (device, inode, size, mtime) in
`.gguf-tui/hashes.json`. Hard links of one inode are one copy. Linking never trusts a name:
both files are hashed again right before, the link is made under a temp name in the copy's
folder and renamed over the copy in one step, so every path keeps its name and its bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gguf_tui.fsutil import fsync_dir, read_regular_text, write_json_atomic
from gguf_tui.store.fileio import sha256_file
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.others import TOOL_OURS, OtherStoresSnapshot
from gguf_tui.store.scan import StoreSnapshot
from gguf_tui.store.usage import active_downloads

HASH_CACHE_NAME = "hashes.json"
MAX_CACHED_HASHES = 200_000

# (what is happening, bytes done, total bytes)
DedupeProgress = Callable[[str, int, int], None]


@dataclass
class Copy:
    """One path to a file's bytes, with the tool whose store holds it."""

    tool: str
    model: str
    path: Path  # the regular file itself (an HF blob, not its snapshot link)
    size: int
    device: int
    inode: int
    links: int
    mtime_ns: int
    sha256: str | None = None  # from the layout or the hash cache (not yet verified)
    store_relative: str | None = None  # ours: the path under our store root

    def to_json(self) -> dict:
        return {"source": self.tool, "model": self.model, "path": str(self.path),
                "device": self.device, "inode": self.inode, "links": self.links}


@dataclass
class DuplicateGroup:
    """Files holding the same bytes; `copies` has one entry per path."""

    sha256: str
    size: int
    copies: list[Copy]

    def inodes(self) -> dict[tuple[int, int], list[Copy]]:
        by_inode: dict[tuple[int, int], list[Copy]] = {}
        for copy in self.copies:
            by_inode.setdefault((copy.device, copy.inode), []).append(copy)
        return by_inode

    @property
    def reclaimable_bytes(self) -> int:
        """What linking would free: every inode but one per filesystem."""
        devices: dict[int, int] = {}
        for device, _inode in self.inodes():
            devices[device] = devices.get(device, 0) + 1
        return sum(count - 1 for count in devices.values()) * self.size

    @property
    def across_filesystems(self) -> bool:
        return len({device for device, _ in self.inodes()}) > 1

    def to_json(self) -> dict:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "copies": [copy.to_json() for copy in self.copies],
            "distinct_files": len(self.inodes()),
            "reclaimable_bytes": self.reclaimable_bytes,
            "across_filesystems": self.across_filesystems,
        }


class HashCache:
    """SHA-256s by (device, inode, size, mtime): a file is hashed once until it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        self.changed = False
        if path is not None:
            try:
                raw = json.loads(read_regular_text(path))
                if isinstance(raw, dict) and isinstance(raw.get("hashes"), dict):
                    self.entries = {
                        str(k): str(v) for k, v in raw["hashes"].items() if isinstance(v, str)
                    }
            except (OSError, ValueError):
                pass  # missing or damaged: hashing again is always correct

    @staticmethod
    def key(copy: Copy) -> str:
        return f"{copy.device}:{copy.inode}:{copy.size}:{copy.mtime_ns}"

    def get(self, copy: Copy) -> str | None:
        return self.entries.get(self.key(copy))

    def put(self, copy: Copy, sha256: str) -> None:
        self.entries[self.key(copy)] = sha256
        self.changed = True

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        items = list(self.entries.items())[-MAX_CACHED_HASHES:]
        write_json_atomic(self.path, {"format": 1, "hashes": dict(items)})
        self.changed = False


def hash_cache_for(layout: StoreLayout) -> HashCache:
    """The store's hash cache (not written when the hidden folder is unsafe)."""
    try:
        layout.check_hidden()
    except OSError:
        return HashCache(None)
    return HashCache(layout.hidden / HASH_CACHE_NAME)


def collect_copies(ours: StoreSnapshot | None, others: OtherStoresSnapshot) -> list[Copy]:
    """Every regular model file: ours (symlinks skipped) and the other tools' data files."""
    copies: list[Copy] = []
    seen: set[str] = set()
    if ours is not None:
        for model in ours.models:
            for entry in model.files:
                if not entry.exists or entry.is_symlink or entry.not_regular:
                    continue
                try:
                    stat = os.lstat(entry.path)
                except OSError:
                    continue
                if str(entry.path) in seen:
                    continue
                seen.add(str(entry.path))
                copies.append(
                    Copy(TOOL_OURS, model.name, entry.path, stat.st_size, stat.st_dev,
                         stat.st_ino, stat.st_nlink, stat.st_mtime_ns,
                         sha256=_manifest_sha(model.managed, entry),
                         store_relative=entry.relative)
                )
    for model in others.models:
        for entry in model.files:
            if str(entry.data_path) in seen:
                continue
            seen.add(str(entry.data_path))
            copies.append(
                Copy(model.tool, model.name, entry.data_path, entry.size, entry.device,
                     entry.inode, entry.links, entry.mtime_ns, sha256=entry.sha256)
            )
    return copies


def _manifest_sha(managed: bool, entry) -> str | None:
    """Our manifest's SHA-256 for grouping (linking hashes again), unless a verify failed."""
    sha = (entry.sha256 or "").lower() if managed else ""
    if entry.verify_failed_at or len(sha) != 64:
        return None
    return sha


def find_duplicates(
    copies: list[Copy],
    cache: HashCache,
    progress: DedupeProgress | None = None,
    *,
    hash_missing: bool = True,
) -> list[DuplicateGroup]:
    """Groups of copies with the same size and SHA-256 and at least two distinct inodes.

    Only files whose size another distinct file shares are ever hashed; with `hash_missing`
    False none is (a quick view from what the layouts and the hash cache already know).
    """
    by_size: dict[int, list[Copy]] = {}
    for copy in copies:
        if copy.size > 0:
            by_size.setdefault(copy.size, []).append(copy)
    groups = []
    for size, same_size in sorted(by_size.items()):
        if len({(c.device, c.inode) for c in same_size}) < 2:
            continue
        by_inode_sha: dict[tuple[int, int], str] = {}
        for copy in same_size:
            key = (copy.device, copy.inode)
            known = copy.sha256 or by_inode_sha.get(key) or cache.get(copy)
            if known is None and not hash_missing:
                continue
            if known is None:
                label = f"hashing {copy.path.name}"
                known = sha256_file(
                    copy.path, progress=(lambda d, t, label=label: progress(label, d, t))
                    if progress else None,
                )
                cache.put(copy, known)
            copy.sha256 = known.lower()
            by_inode_sha.setdefault(key, copy.sha256)
        by_sha: dict[str, list[Copy]] = {}
        for copy in same_size:
            if copy.sha256:
                by_sha.setdefault(copy.sha256, []).append(copy)
        for sha, members in sorted(by_sha.items()):
            if len({(c.device, c.inode) for c in members}) > 1:
                groups.append(DuplicateGroup(sha, size, members))
    return groups


@dataclass
class LinkAction:
    """What dedupe did (or would do) with one path."""

    path: Path
    tool: str
    kept: Path  # the file whose inode the path now shares
    result: str  # "linked", "would link", "skipped"
    reason: str = ""
    freed_bytes: int = 0

    def to_json(self) -> dict:
        return {"path": str(self.path), "source": self.tool, "kept": str(self.kept),
                "result": self.result, "reason": self.reason, "freed_bytes": self.freed_bytes}


@dataclass
class DedupeReport:
    actions: list[LinkAction] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(action.freed_bytes for action in self.actions)

    def to_json(self) -> dict:
        return {"actions": [a.to_json() for a in self.actions], "freed_bytes": self.freed_bytes}


_TOOL_ORDER = {TOOL_OURS: 0}


def _keeper(inodes: dict[tuple[int, int], list[Copy]]) -> tuple[int, int]:
    """The inode to keep: the most linked, then ours, then the oldest."""
    return min(
        inodes,
        key=lambda key: (
            -max(c.links for c in inodes[key]),
            min(_TOOL_ORDER.get(c.tool, 1) for c in inodes[key]),
            min(c.mtime_ns for c in inodes[key]),
        ),
    )


def link_duplicates(
    layout: StoreLayout,
    groups: list[DuplicateGroup],
    *,
    dry_run: bool = False,
    progress: DedupeProgress | None = None,
) -> DedupeReport:
    """Replace every extra copy on the keeper's filesystem with a hard link to the keeper."""
    report = DedupeReport()
    busy = active_downloads(layout) if layout.locks_dir.is_dir() else None
    for group in groups:
        inodes = group.inodes()
        keep_key = _keeper(inodes)
        keeper = inodes[keep_key][0]
        keeper_verified: bool | None = None
        # A file a download is writing is neither replaced nor linked to: its bytes may change.
        keeper_busy = _busy_reason(busy, inodes[keep_key])
        for key, members in inodes.items():
            if key == keep_key:
                continue
            if key[0] != keep_key[0]:
                for copy in members:
                    report.actions.append(LinkAction(
                        copy.path, copy.tool, keeper.path, "skipped",
                        "on another filesystem than the copy kept: a hard link cannot cross "
                        "filesystems, nothing done"))
                continue
            reason = keeper_busy or _busy_reason(busy, members)
            if reason is None and not dry_run:
                if keeper_verified is None:
                    keeper_verified = _hash_is(keeper, group.sha256, progress)
                if not keeper_verified:
                    reason = f"{keeper.path} no longer has SHA-256 {group.sha256[:12]}…"
            if reason is None and not dry_run:
                if not _hash_is(members[0], group.sha256, progress):
                    reason = "its bytes differ from the copy kept (SHA-256 checked again)"
            if reason is not None:
                for copy in members:
                    report.actions.append(
                        LinkAction(copy.path, copy.tool, keeper.path, "skipped", reason))
                continue
            # The inode is freed only when every one of its links is replaced.
            frees = members[0].links <= len(members)
            for index, copy in enumerate(members):
                freed = group.size if frees and index == len(members) - 1 else 0
                if dry_run:
                    report.actions.append(
                        LinkAction(copy.path, copy.tool, keeper.path, "would link", "", freed))
                    continue
                error = _swap_in_link(keeper.path, copy)
                if error:
                    report.actions.append(
                        LinkAction(copy.path, copy.tool, keeper.path, "skipped", error))
                else:
                    report.actions.append(
                        LinkAction(copy.path, copy.tool, keeper.path, "linked", "", freed))
    return report


def _busy_reason(busy, members: list[Copy]) -> str | None:
    if busy is None:
        return None
    for copy in members:
        if copy.store_relative is not None:
            reason = busy.busy_reason(copy.store_relative)
            if reason:
                return reason
    return None


def _hash_is(copy: Copy, sha256: str, progress: DedupeProgress | None) -> bool:
    label = f"verifying {copy.path.name}"
    try:
        actual = sha256_file(
            copy.path, progress=(lambda d, t: progress(label, d, t)) if progress else None
        )
    except OSError:
        return False
    return actual == sha256


def _swap_in_link(keeper: Path, copy: Copy) -> str | None:
    """Link `keeper` under a temp name beside `copy`, then rename it over `copy`."""
    temp = copy.path.with_name(f".{copy.path.name}.gguf-tui-dedupe.{os.getpid()}.tmp")
    try:
        now = os.lstat(copy.path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
        copy.device, copy.inode, copy.size, copy.mtime_ns
    ):
        return "it changed since it was hashed"
    try:
        os.link(keeper, temp, follow_symlinks=False)
    except OSError as exc:
        return f"cannot hard-link: {exc.strerror or exc}"
    try:
        os.rename(temp, copy.path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        return f"cannot replace it: {exc.strerror or exc}"
    fsync_dir(copy.path.parent)
    return None
