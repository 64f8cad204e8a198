"""Adopting GGUF files already on disk: hash them, read their GGUF facts, write a manifest.

A file outside the store is hard-linked, moved or copied in (`mode`); a file already under the
root is adopted where it is. Split parts of one stem become one model; `name` groups every path
into one model (e.g. a model and its mmproj). A file whose bytes the store already holds (same
SHA-256) is not stored a second time.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gguf_tui.fsutil import create_file, fsync_dir, make_folders, share_new_file
from gguf_tui.gguf import GGUFError, GGUFInfo, model_facts
from gguf_tui.store.fileio import HASH_BLOCK, open_noatime, read_header, sha256_file
from gguf_tui.store.layout import HIDDEN_DIR_NAME, StoreLayout, safe_file_name
from gguf_tui.store.locks import DownloadLock, LockHeld
from gguf_tui.store.manifest import SHA256_PUBLISHED, SHA256_RECORDED, Manifest, ManifestFile
from gguf_tui.store.scan import (
    SPLIT_RE,
    StoreSnapshot,
    model_from_manifest,
    scan_store,
    walk_gguf,
)
from gguf_tui.store.usage import free_space
from gguf_tui.textsafe import plain

MODES = ("auto", "link", "move", "copy")

# (what is happening, e.g. "hashing x.gguf", bytes done, total bytes)
ImportProgress = Callable[[str, int, int], None]


class StoreImportError(Exception):
    """An import cannot go on; the message says which file and why. Nothing half-placed remains."""


@dataclass
class ImportOutcome:
    name: str
    action: str  # "imported", "adopted" (already under the root), "duplicate" (nothing stored)
    files: list[str] = field(default_factory=list)  # store-relative paths in the manifest
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "action": self.action, "files": self.files, "notes": self.notes}


@dataclass
class _Source:
    path: Path  # absolute, as given (not resolved: a symlinked source is read through)
    info: GGUFInfo
    size: int
    inside: str | None  # store-relative path when already under the root
    role: str = "model"
    sha256: str | None = None
    file_name: str | None = None  # the name to store it under (an Ollama blob has none)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, and the *.gguf files under folders (hidden entries skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(path / relative for relative in walk_gguf(path))
        elif path.exists():
            found.append(path)
        else:
            raise StoreImportError(f"{path}: no such file")
    unique = list(dict.fromkeys(Path(os.path.abspath(p)) for p in found))
    if not unique:
        raise StoreImportError("no GGUF files found in " + ", ".join(str(p) for p in paths))
    return unique


def _inside_store(layout: StoreLayout, path: Path) -> str | None:
    root = layout.root.resolve()
    try:
        relative = path.parent.resolve().relative_to(root) / path.name
    except ValueError:
        return None
    if relative.parts and relative.parts[0] == HIDDEN_DIR_NAME:
        raise StoreImportError(f"{path}: refusing a file inside the store's hidden folder")
    return relative.as_posix()


def _groups(sources: list[_Source], name: str | None) -> list[tuple[str, list[_Source]]]:
    if name is not None:
        return [(name, sources)]
    groups: dict[tuple, list[_Source]] = {}
    for source in sources:
        split = SPLIT_RE.match(source.path.name)
        if split:
            key: tuple = (source.path.parent, split.group("stem"), split.group("count"))
        else:
            key = (source.path,)
        groups.setdefault(key, []).append(source)
    named = []
    for members in groups.values():
        members.sort(key=lambda s: s.path.name)
        first = members[0]
        split = SPLIT_RE.match(first.path.name)
        stem = split.group("stem") if split else _without_gguf(first.path.name)
        if first.inside and "/" in first.inside:
            stem = f"{first.inside.rsplit('/', 1)[0]}/{stem}"
        named.append((stem, members))
    return named


def _without_gguf(file_name: str) -> str:
    return file_name[: -len(".gguf")] if file_name.lower().endswith(".gguf") else file_name


def _roles(members: list[_Source]) -> None:
    models = [s for s in members if not s.info.is_mmproj]
    for source in members:
        if source.info.is_mmproj:
            source.role = "mmproj"
        elif len(models) > 1 or (source.info.split_count or 0) > 1:
            source.role = "part"
        else:
            source.role = "model"


class _Importer:
    def __init__(
        self, layout: StoreLayout, mode: str, progress: ImportProgress | None
    ) -> None:
        self.layout = layout
        self.mode = mode
        self.progress = progress or (lambda *_: None)
        self.snapshot: StoreSnapshot = scan_store(layout)
        self.by_sha: dict[str, tuple[str, str]] = {}  # sha -> (model, path) of managed files
        self.sizes: dict[int, list[str]] = {}  # size -> unmanaged store paths
        # SHA-256s some manifest verified against a published or user-given hash: a file with
        # those bytes is verified; any other adopted file's hash is only recorded.
        self.published: set[str] = set()
        for model in self.snapshot.models:
            for entry in model.files:
                if not entry.exists:
                    continue
                if model.managed and entry.sha256:
                    self.by_sha.setdefault(entry.sha256.lower(), (model.name, entry.relative))
                    if entry.has_reference:
                        self.published.add(entry.sha256.lower())
                elif not model.managed and not entry.is_symlink:
                    self.sizes.setdefault(entry.size, []).append(entry.relative)
        self.unmanaged_sha: dict[str, str] = {}
        self.origin: dict = {}

    def hash(self, path: Path, label: str) -> str:
        return sha256_file(path, progress=lambda done, total: self.progress(label, done, total))

    def store_copy_of(self, source: _Source) -> tuple[str, str | None] | None:
        """(store path, managing model or None) holding the same bytes as `source`, if any."""
        # A file already under the root is adopted where it is unless a manifest holds its bytes.
        same_size = [] if source.inside else self.sizes.get(source.size, [])
        managed_sizes = any(
            entry.size == source.size
            for model in self.snapshot.models
            if model.managed
            for entry in model.files
        )
        if not same_size and not managed_sizes:
            return None
        if source.sha256 is None:
            source.sha256 = self.hash(source.path, f"hashing {source.path.name}")
        if source.sha256 in self.by_sha:
            model_name, relative = self.by_sha[source.sha256]
            if relative != source.inside:
                return relative, model_name
        for relative in same_size:
            if relative not in self.unmanaged_sha:
                self.unmanaged_sha[relative] = self.hash(
                    self.layout.root / relative, f"hashing {relative}"
                )
            if self.unmanaged_sha[relative] == source.sha256:
                return relative, None
        return None

    def place(self, source: _Source, dest: str, notes: list[str]) -> str:
        """Bring `source` into the store at `dest`; returns the mode used."""
        target = self.layout.dest_path(dest)
        if os.path.lexists(target):
            raise StoreImportError(
                f"{source.path}: {dest} already exists in the store with other content; "
                f"rename the file first"
            )
        key = hashlib.sha256(f"import:{dest}".encode()).hexdigest()[:32]
        lock = DownloadLock(self.layout.lock_path(key), what=dest)
        try:
            lock.acquire()
        except LockHeld as held:
            raise StoreImportError(f"{dest}: {held}") from None
        try:
            return self._place_locked(source, target, key, notes)
        finally:
            lock.release()

    def _place_locked(self, source: _Source, target: Path, key: str, notes: list[str]) -> str:
        same_fs = _same_filesystem(source.path, self.layout.root)
        mode = self.mode
        make_folders(target.parent)
        if mode == "link" or (mode == "auto" and same_fs):
            try:
                os.link(source.path, target)
            except OSError as exc:
                if mode == "link":
                    refusal = _link_refusal(source.path, self.layout.root, exc)
                    raise StoreImportError(refusal) from None
                notes.append(f"{source.path.name}: copied (hard link refused: {exc.strerror})")
                return self._copy(source, target, key)
            if source.sha256 is None:
                source.sha256 = self.hash(target, f"hashing {source.path.name}")
            fsync_dir(target.parent)
            return "link"
        if mode == "move" and same_fs:
            if source.sha256 is None:
                source.sha256 = self.hash(source.path, f"hashing {source.path.name}")
            os.rename(source.path, target)
            _share_moved(target)
            fsync_dir(target.parent)
            return "move"
        used = self._copy(source, target, key)
        if mode == "move":
            source.path.unlink()
            return "move"
        return used

    def _copy(self, source: _Source, target: Path, key: str) -> str:
        """Copy through a temp file in the hidden folder while hashing, then rename into place."""
        free = free_space(self.layout.root)
        if source.size > free:
            raise StoreImportError(
                f"{source.path}: not enough space in the store ({source.size} bytes needed, "
                f"{free} free)"
            )
        self.layout.ensure()
        temp = self.layout.partials_dir / f"{key}.import.part"
        digest = hashlib.sha256()
        label = f"copying {source.path.name}"
        src = open_noatime(source.path)
        try:
            out = create_file(temp, os.O_WRONLY | os.O_TRUNC, 0o644)
            try:
                done, last = 0, 0.0
                while True:
                    block = os.read(src, HASH_BLOCK)
                    if not block:
                        break
                    digest.update(block)
                    view = memoryview(block)
                    while view:
                        view = view[os.write(out, view) :]
                    done += len(block)
                    if time.monotonic() - last >= 0.25:
                        last = time.monotonic()
                        self.progress(label, done, source.size)
                os.fsync(out)
            finally:
                os.close(out)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        finally:
            os.close(src)
        self.progress(label, source.size, source.size)
        sha = digest.hexdigest()
        if source.sha256 is not None and sha != source.sha256:
            temp.unlink(missing_ok=True)
            raise StoreImportError(f"{source.path}: changed while it was being copied")
        source.sha256 = sha
        make_folders(target.parent)
        os.replace(temp, target)
        fsync_dir(target.parent)
        return "copy"


def _share_moved(target: Path) -> None:
    """A file moved into a shared store is the group's as well (a hard link is left alone: its
    mode is also the mode of the original outside the store)."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        share_new_file(fd, target.parent, 0o644)
    except OSError:
        pass  # the file is in place; only its group's rights could not be widened
    finally:
        os.close(fd)


def _same_filesystem(path: Path, root: Path) -> bool:
    try:
        return path.stat().st_dev == root.stat().st_dev
    except OSError:
        return False


def _link_refusal(source: Path, root: Path, exc: OSError) -> str:
    if exc.errno == errno.EXDEV:
        why = "it is on another filesystem than the store"
    elif exc.errno == errno.EPERM:
        why = (
            "the kernel refused it (with fs.protected_hardlinks you must own the file), "
            "or the filesystem does not allow links"
        )
    elif exc.errno == errno.EMLINK:
        why = "the file has too many links"
    else:
        why = exc.strerror or str(exc)
    return f"cannot hard-link {source} into {root}: {why}; use --copy or --move"


def import_paths(
    layout: StoreLayout,
    paths: list[Path],
    *,
    mode: str = "auto",
    name: str | None = None,
    progress: ImportProgress | None = None,
    file_names: dict[Path, str] | None = None,
    origin: dict | None = None,
) -> list[ImportOutcome]:
    """Adopt GGUF files into the store, one manifest per logical model.

    `mode`: "link" (hard link, else StoreImportError saying why), "move", "copy", or "auto"
    (hard link on the same filesystem, else copy). Every path is checked to be a GGUF file
    before anything is placed. Raises StoreImportError on the first file that cannot go in.
    `file_names` maps a path (absolute) to the file name to store it under; `origin` is added
    to each manifest's `source` (e.g. the tool and model name it was adopted from).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    layout.ensure()
    sources = []
    for path in expand_paths(paths):
        try:
            info = read_header(path)
        except GGUFError as exc:
            raise StoreImportError(f"not a GGUF file: {plain(str(exc))}") from None
        inside = _inside_store(layout, path)
        chosen_name = (file_names or {}).get(path)
        sources.append(_Source(path, info, path.stat().st_size, inside, file_name=chosen_name))
    importer = _Importer(layout, mode, progress)
    importer.origin = dict(origin or {})
    outcomes = []
    for model_name, members in _groups(sources, name):
        outcomes.append(_import_group(importer, model_name, members))
    return outcomes


def _import_group(importer: _Importer, model_name: str, members: list[_Source]) -> ImportOutcome:
    layout = importer.layout
    _roles(members)
    outcome = ImportOutcome(model_name, "imported")
    copies = [importer.store_copy_of(source) for source in members]
    managed_copies = [copy for copy in copies if copy is not None and copy[1] is not None]
    if len(managed_copies) == len(members):
        outcome.action = "duplicate"
        outcome.files = [relative for relative, _ in managed_copies]
        outcome.notes = [
            f"{source.path.name}: already in the store as {relative} ({owner})"
            + (" — this copy can go: gguf-tui rm " + source.inside if source.inside else "")
            for source, (relative, owner) in zip(members, managed_copies)
        ]
        return outcome
    if any(model.managed and model.name == model_name for model in importer.snapshot.models):
        raise StoreImportError(
            f"a model named '{model_name}' is already in the store; choose another with --name"
        )
    entries: list[ManifestFile] = []
    now = time.time()
    for source, copy in zip(members, copies):
        if copy is not None:
            relative, owner = copy
            if owner is not None:
                outcome.notes.append(
                    f"{source.path.name}: already in the store as {relative} ({owner})"
                )
            else:
                outcome.notes.append(f"{source.path.name}: same bytes as {relative}, adopted there")
        elif source.inside is not None:
            relative = source.inside
            if source.sha256 is None:
                source.sha256 = importer.hash(source.path, f"hashing {relative}")
        else:
            relative = safe_file_name(source.file_name or source.path.name)
            if not relative.lower().endswith(".gguf"):
                relative += ".gguf"
            used = importer.place(source, relative, outcome.notes)
            outcome.notes.append(f"{source.path.name}: {_VERB[used]} as {relative}")
        entries.append(
            ManifestFile(
                path=relative,
                size=source.size,
                sha256=source.sha256 or "",
                role=source.role,
                verified_at=now,
                sha256_source=(
                    SHA256_PUBLISHED if source.sha256 in importer.published else SHA256_RECORDED
                ),
            )
        )
    outcome.files = [entry.path for entry in entries]
    if all(source.inside is not None for source in members):
        outcome.action = "adopted"
    facts = model_facts([source.info for source in members])
    manifest = Manifest(
        name=model_name,
        files=entries,
        source={
            "kind": "import",
            "mode": importer.mode,
            "from": [str(source.path) for source in members],
            **importer.origin,
        },
        license=facts.get("license"),
        gguf=facts,
        added_at=now,
    )
    manifest.save(layout.manifest_path(model_name))
    for entry in entries:
        importer.by_sha.setdefault(entry.sha256, (model_name, entry.path))
    importer.snapshot.models.append(
        model_from_manifest(layout.root, manifest, layout.manifest_path(model_name))
    )
    return outcome


_VERB = {"link": "hard-linked", "move": "moved", "copy": "copied"}
