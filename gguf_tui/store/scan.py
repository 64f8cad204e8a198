"""What is in the store: models from manifests plus GGUF files found on disk, and the totals.

`scan_store(root)` is what `ls` prints and what the TUI's catalog and status bar show. It never
raises for what it finds: a corrupt manifest becomes a `problem` (its files are then listed as
unmanaged), a vanished file marks its model incomplete, a model whose files are all gone is not
listed. `gguf_tui.store.lookup.find_model` resolves what a user types to one of these models.
"""

from __future__ import annotations

import os
import re
import stat as stat_module
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf_tui.fsutil import file_kind
from gguf_tui.gguf import GGUFError
from gguf_tui.store.fileio import cached_header
from gguf_tui.store.layout import StoreLayout, UnsafePathError, check_relative_path
from gguf_tui.store.manifest import REFERENCE_SOURCES, Manifest, ManifestError
from gguf_tui.store.usage import (
    PartialDownload,
    active_downloads,
    free_space,
    job_records,
    list_partials,
)

SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
QUANT_IN_NAME_RE = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d_[A-Z0-9_]+?|Q\d_\d|BF16|F16|F32|TQ\d_\d|MXFP4(?:_MOE)?)"
    r"(?=$|[-_.](?!\d))",
    re.IGNORECASE,
)
# An access time counts as a use only when it is later than the last write by this much: the
# engine reads a header right after placing a file, and copying sets atime to the copy's start.
ATIME_SLACK = 2.0

# Model states, in the order a user should care about them.
STATE_VERIFIED = "verified"  # every file matched a published or user-given SHA-256
STATE_RECORDED = "recorded"  # every file matches the SHA-256 recorded when it came in, no reference
STATE_UNVERIFIED = "unverified"
STATE_CORRUPT = "corrupt"  # the last verify found other bytes
STATE_MODIFIED = "modified"  # a file's size differs from the manifest
STATE_INCOMPLETE = "incomplete"  # some files are missing
STATE_NOT_A_FILE = "not a file"  # a FIFO, socket, device or folder where a file should be
STATE_UNMANAGED = "unmanaged"
STATE_DOWNLOADING = "downloading"  # files of a download still in progress
STATE_PAUSED = "download paused"  # files already placed by an unfinished download


@dataclass
class StoreFile:
    """One file of a model as it is on disk now."""

    relative: str  # '/'-separated path under the root
    path: Path  # absolute
    role: str = "model"  # model, part, mmproj
    size: int = 0  # bytes (a symlink: its target's size)
    expected_size: int | None = None  # from the manifest
    sha256: str | None = None
    verified_at: float | None = None
    verify_failed_at: float | None = None
    sha256_source: str | None = None  # manifest.SHA256_PUBLISHED, _USER or _RECORDED
    origin: str | None = None  # scheme://host:port that served it (a Hub endpoint or mirror)
    exists: bool = True
    is_symlink: bool = False
    inode: tuple[int, int] | None = None  # (device, inode) of the file itself (lstat)
    links: int = 1  # hard links: >1 means deleting this one frees no disk space
    mtime: float | None = None
    atime: float | None = None
    # What is there instead of a regular file ('a FIFO', ...): never opened, listed as a problem.
    not_regular: str | None = None

    @property
    def problem(self) -> str | None:
        """Why this file cannot be used, in one line; None when it can (or is just missing)."""
        if self.not_regular:
            return f"{self.relative}: not a regular file ({self.not_regular})"
        return None

    @property
    def has_reference(self) -> bool:
        """Whether its SHA-256 is a published or user-given one ("verified", not "recorded")."""
        return self.sha256_source in REFERENCE_SOURCES

    @property
    def disk_bytes(self) -> int:
        """Bytes this entry takes in the store (a symlink's target lives elsewhere)."""
        return 0 if self.is_symlink or not self.exists or self.not_regular else self.size

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.relative,
            "role": self.role,
            "size": self.size,
            "sha256": self.sha256,
            "verified_at": self.verified_at,
            "verify_failed_at": self.verify_failed_at,
            "sha256_source": self.sha256_source,
            "origin": self.origin,
            "verified": self.has_reference and self.verified_at is not None,
            "exists": self.exists,
            "symlink": self.is_symlink,
            "problem": self.problem,
        }


@dataclass
class StoreModel:
    """One logical model: a managed manifest, or unmanaged GGUF file(s) found on disk."""

    name: str
    files: list[StoreFile]
    managed: bool
    state: str
    quant: str | None = None
    architecture: str | None = None
    parameter_count: int | None = None
    context_length: int | None = None
    added_at: float | None = None
    last_used_at: float | None = None
    manifest_path: Path | None = None
    source: dict[str, Any] = field(default_factory=dict)
    license: str | None = None
    gguf: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why the header could not be read (unmanaged files)
    owner_user: str = ""  # another user whose download this still is (shared stores)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files if f.exists)

    @property
    def disk_bytes(self) -> int:
        return sum(f.disk_bytes for f in self.files)

    @property
    def verified_at(self) -> float | None:
        """When every file was last verified (the oldest of their times), if all were."""
        times = [f.verified_at for f in self.files]
        if not self.managed or not times or any(t is None for t in times):
            return None
        return min(times)  # type: ignore[type-var]

    @property
    def main_file(self) -> StoreFile:
        """The file a runner loads: the first split part or the model, never the mmproj."""
        for entry in self.files:
            if entry.role != "mmproj":
                return entry
        return self.files[0]

    @property
    def mmproj(self) -> StoreFile | None:
        return next((f for f in self.files if f.role == "mmproj"), None)

    @property
    def lru_time(self) -> float:
        """The time prune sorts by: last use, else when it was added, else its newest write."""
        if self.last_used_at is not None:
            return self.last_used_at
        if self.added_at is not None:
            return self.added_at
        return max((f.mtime or 0.0) for f in self.files) if self.files else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "managed": self.managed,
            "state": self.state,
            "owner_user": self.owner_user,
            "files": [f.to_json() for f in self.files],
            "size": self.size,
            "quant": self.quant,
            "architecture": self.architecture,
            "parameter_count": self.parameter_count,
            "context_length": self.context_length,
            "verified_at": self.verified_at,
            "added_at": self.added_at,
            "last_used_at": self.last_used_at,
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "source": self.source,
            "license": self.license,
            "error": self.error,
        }


@dataclass
class ManifestProblem:
    manifest: Path
    message: str

    def to_json(self) -> dict[str, str]:
        return {"manifest": str(self.manifest), "error": self.message}


@dataclass
class StoreSnapshot:
    """The store at one moment: its models and what the disk looks like."""

    root: Path
    models: list[StoreModel]
    total_size: int  # bytes of model files in the store (hard links once, symlinks not)
    free_space: int
    partials: list[PartialDownload]
    problems: list[ManifestProblem]  # manifests that could not be used
    stale_manifests: list[Manifest]  # manifests whose files are all gone
    scanned_at: float = field(default_factory=time.time)

    @property
    def partials_size(self) -> int:
        return sum(p.size for p in self.partials)

    def claims(self, relative: str) -> list[StoreModel]:
        """The managed models that list `relative` among their files."""
        return [
            m for m in self.models if m.managed and any(f.relative == relative for f in m.files)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.root),
            "models": [m.to_json() for m in self.models],
            "total_size": self.total_size,
            "free_space": self.free_space,
            "partials_size": self.partials_size,
            "partials": len(self.partials),
            "problems": [p.to_json() for p in self.problems],
            "stale_manifests": [m.name for m in self.stale_manifests],
        }


# ---- scanning ----------------------------------------------------------------------------------


def walk_gguf(root: Path) -> list[str]:
    """Relative paths of the *.gguf entries under root that are not folders; hidden entries and
    symlinked folders are skipped."""
    found: list[str] = []

    def visit(folder: Path, prefix: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # the store's own folder, and other tools' temp files
            relative = f"{prefix}{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    visit(Path(entry.path), relative + "/")
                elif entry.name.lower().endswith(".gguf"):
                    # Regular files, links, and FIFOs or sockets named like models: the scan
                    # lists those as problems without ever opening them.
                    found.append(relative)
            except OSError:
                continue

    visit(root, "")
    return sorted(found)


def _file_on_disk(root: Path, relative: str, **known: Any) -> StoreFile:
    path = root / relative
    entry = StoreFile(relative=relative, path=path, **known)
    try:
        link_stat = path.lstat()
    except OSError:
        entry.exists = False
        return entry
    entry.is_symlink = path.is_symlink()
    entry.inode = (link_stat.st_dev, link_stat.st_ino)
    entry.links = link_stat.st_nlink
    try:
        stat = path.stat() if entry.is_symlink else link_stat
    except OSError:
        stat = link_stat  # a dangling link: the link exists, its target does not
    dangling = entry.is_symlink and stat is link_stat
    entry.size = stat.st_size if not dangling else 0
    if not dangling and not stat_module.S_ISREG(stat.st_mode):
        entry.not_regular = file_kind(stat.st_mode)
        entry.size = 0  # a FIFO's or a folder's size says nothing about a model
    # A symlink's own mtime says when it appeared in the store; reads show on its target.
    entry.mtime = link_stat.st_mtime
    entry.atime = stat.st_atime
    return entry


def _used_by_atime(files: list[StoreFile]) -> float | None:
    used = [
        f.atime
        for f in files
        if f.exists and f.atime is not None and f.mtime is not None
        and f.atime > f.mtime + ATIME_SLACK
    ]
    return max(used) if used else None


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def quant_from_name(name: str) -> str | None:
    match = None
    for match in QUANT_IN_NAME_RE.finditer(Path(name).name):
        pass
    return match.group(1).upper() if match else None


def model_from_manifest(root: Path, manifest: Manifest, path: Path) -> StoreModel:
    files = [
        _file_on_disk(
            root,
            entry.path,
            role=entry.role,
            expected_size=entry.size,
            sha256=entry.sha256,
            verified_at=entry.verified_at,
            verify_failed_at=entry.verify_failed_at,
            sha256_source=entry.sha256_source,
            origin=entry.origin,
        )
        for entry in manifest.files
    ]
    for entry in files:
        if not entry.exists:
            entry.size = entry.expected_size or 0
    if any(not f.exists for f in files):
        state = STATE_INCOMPLETE
    elif any(f.not_regular for f in files):
        state = STATE_NOT_A_FILE
    elif any(f.verify_failed_at is not None for f in files):
        state = STATE_CORRUPT
    elif any(f.size != f.expected_size for f in files):
        state = STATE_MODIFIED
    elif all(f.verified_at is not None and f.has_reference for f in files):
        state = STATE_VERIFIED
    elif all(f.verified_at is not None for f in files):
        state = STATE_RECORDED
    else:
        state = STATE_UNVERIFIED
    facts = manifest.gguf or {}
    return StoreModel(
        name=manifest.name,
        files=files,
        managed=True,
        state=state,
        quant=_text(facts.get("quantization")) or _text(manifest.source.get("quant")),
        architecture=_text(facts.get("architecture")),
        parameter_count=_count(facts.get("parameter_count")),
        context_length=_count(facts.get("context_length")),
        added_at=manifest.added_at or None,
        last_used_at=_later(manifest.last_used_at, _used_by_atime(files)),
        manifest_path=path,
        source=manifest.source,
        license=manifest.license,
        gguf=facts,
        error=next((f.problem for f in files if f.problem), None),
    )


def _unmanaged_model(root: Path, name: str, relatives: list[str], state: str) -> StoreModel:
    files = [_file_on_disk(root, relative) for relative in relatives]
    model = StoreModel(name=name, files=files, managed=False, state=state)
    problem = next((f.problem for f in files if f.problem), None)
    if problem:
        model.error = problem
        if state == STATE_UNMANAGED:
            model.state = STATE_NOT_A_FILE
    facts = []
    for entry in files:
        info = cached_header(entry.path) if entry.exists and not entry.not_regular else None
        if isinstance(info, GGUFError):
            model.error = model.error or str(info)
            continue
        if info is None:
            continue
        if info.is_mmproj:
            entry.role = "mmproj"
        elif (info.split_count or 0) > 1 or len(files) > 1:
            entry.role = "part"
        facts.append((entry, info))
    # Facts from the model itself, not its projector; split parts after the first may lack them.
    main = [info for entry, info in facts if entry.role != "mmproj"] or [i for _, i in facts]
    if main:
        first = main[0]
        model.architecture = first.architecture
        model.quant = first.quantization
        model.context_length = first.context_length
        counts = [info.parameter_count for info in main]
        if "general.parameter_count" in first.metadata or None in counts:
            model.parameter_count = first.parameter_count
        else:
            model.parameter_count = sum(counts)  # type: ignore[arg-type]
        model.gguf = first.to_json()
    model.quant = model.quant or quant_from_name(relatives[0])
    model.last_used_at = _used_by_atime(files)
    return model


def _group_unmanaged(
    relatives: list[str], owned_by_job: dict[str, str]
) -> list[tuple[str, list[str]]]:
    """Unmanaged files as models: split parts of one stem together, a pending job's together."""
    groups: dict[str, list[str]] = {}
    for relative in relatives:
        if relative in owned_by_job:
            groups.setdefault(owned_by_job[relative], []).append(relative)
            continue
        folder, _, file_name = relative.rpartition("/")
        split = SPLIT_RE.match(file_name)
        stem = split.group("stem") if split else file_name[: -len(".gguf")]
        name = f"{folder}/{stem}" if folder else stem
        groups.setdefault(name, []).append(relative)
    return sorted((name, sorted(files)) for name, files in groups.items())


def scan_store(root: Path | StoreLayout) -> StoreSnapshot:
    """Everything `ls` shows. Reads manifests and the headers of unmanaged files (cached)."""
    layout = root if isinstance(root, StoreLayout) else StoreLayout(Path(root))
    root = layout.root
    problems: list[ManifestProblem] = []
    stale: list[Manifest] = []
    models: list[StoreModel] = []
    claimed: set[str] = set()
    # Unfinished downloads (queue records): their placed files are not a finished model yet.
    records = job_records(layout)
    active = active_downloads(layout, records)
    owned_by_job: dict[str, str] = {}
    running: set[str] = set()
    other_users: dict[str, str] = {}  # job name -> the other user whose download it is
    for record in records:
        for dest in record.dests:
            owned_by_job.setdefault(dest, record.name)
            if dest in active.jobs or dest in active.owners:
                running.add(record.name)
            owner = active.owners.get(dest) or active.queued.get(dest)
            if owner is not None and owner.other_user:
                other_users.setdefault(record.name, owner.user_name)
    folder = layout.manifests_dir
    manifest_paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for path in manifest_paths:
        try:
            manifest = Manifest.load(path)
            for entry in manifest.files:
                check_relative_path(entry.path)
        except (ManifestError, UnsafePathError) as exc:
            problems.append(ManifestProblem(path, _problem_text(path, exc)))
            continue
        model = model_from_manifest(root, manifest, path)
        if not any(f.exists for f in model.files):
            stale.append(manifest)
            continue
        if model.name in {record.name for record in records}:
            # The engine writes the manifest after each placed file of a multi-file model.
            model.state = STATE_DOWNLOADING if model.name in running else STATE_PAUSED
            model.owner_user = other_users.get(model.name, "")
        claimed.update(f.relative for f in model.files)
        models.append(model)

    unclaimed = [relative for relative in walk_gguf(root) if relative not in claimed]
    for name, relatives in _group_unmanaged(unclaimed, owned_by_job):
        if relatives[0] in owned_by_job:
            state = STATE_DOWNLOADING if name in running else STATE_PAUSED
        else:
            state = STATE_UNMANAGED
        models.append(_unmanaged_model(root, name, relatives, state))
        if relatives[0] in owned_by_job:
            models[-1].owner_user = other_users.get(owned_by_job[relatives[0]], "")

    models.sort(key=lambda m: m.name.lower())
    seen: set[tuple[int, int]] = set()
    total = 0
    for model in models:
        for entry in model.files:
            if entry.disk_bytes and entry.inode not in seen:
                seen.add(entry.inode)  # type: ignore[arg-type]
                total += entry.disk_bytes
    return StoreSnapshot(
        root=root,
        models=models,
        total_size=total,
        free_space=free_space(root),
        partials=list_partials(layout),
        problems=problems,
        stale_manifests=stale,
    )


def _problem_text(path: Path, exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, UnsafePathError):
        text = f"{path}: invalid manifest ({text})"
    return f"{text}; its files are shown as unmanaged"
