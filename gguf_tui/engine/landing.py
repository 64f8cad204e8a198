"""Where finished files land: what the store already holds for a request, checking that the
bytes are a GGUF model, and recording placed files in the model's manifest."""

from __future__ import annotations

import errno
import hmac
import os
import re
import stat
import time
from dataclasses import replace
from pathlib import Path

from gguf_tui.engine.errors import DiskFullError, DownloadError
from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.engine.spec import FileRequest, JobSpec
from gguf_tui.gguf import GGUFError, model_facts
from gguf_tui.store.fileio import read_header, sha256_file
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.manifest import SHA256_RECORDED, Manifest, ManifestError, ManifestFile
from gguf_tui.store.sharing import manifests_listing
from gguf_tui.textsafe import plain, redact_url

# A JSON temp file (manifest, queue record) this old was left by a process that died mid-write:
# a live writer renames its temp file away within milliseconds.
STALE_TEMP_AGE = 60.0
_TEMP_RE = re.compile(r"^\..+\.\d+\.tmp$")


class ManifestWriteError(DownloadError):
    """The manifest could not be written; the downloaded file is kept, unplaced, to try again."""


def load_manifest(layout: StoreLayout, name: str) -> Manifest | None:
    """The model's manifest, None if there is none; raises ManifestError if it is corrupt."""
    path = layout.manifest_path(name)
    if not path.exists():
        return None
    return Manifest.load(path)


def _on_disk(layout: StoreLayout, entry: ManifestFile) -> bool:
    dest = layout.root / entry.path
    try:
        return dest.is_file() and not dest.is_symlink() and dest.stat().st_size == entry.size
    except OSError:
        return False


def already_placed(
    layout: StoreLayout, request: FileRequest, manifest: Manifest | None
) -> ManifestFile | None:
    """The manifest's entry for this file when the file is in place, whole, the same one, and
    not found corrupt by a verify (a corrupt file is downloaded again)."""
    if manifest is None:
        return None
    for entry in manifest.files:
        if entry.path != request.dest:
            continue
        if entry.verify_failed_at is not None or not _on_disk(layout, entry):
            return None
        if request.expected_sha256 and request.expected_sha256.lower() != entry.sha256:
            return None
        if layout.state_path(request.key_hash).exists():
            # The manifest is written before the rename: a resume state still there means the
            # process stopped in between, and the file at dest (if any) is not the new one.
            return None
        return entry
    return None


def _same_file(request: FileRequest, entry: ManifestFile) -> bool:
    """Whether another model's entry is the file this request asks for."""
    if request.expected_size is not None and request.expected_size != entry.size:
        return False
    if request.expected_sha256:
        return hmac.compare_digest(request.expected_sha256.lower().encode(), entry.sha256.encode())
    return entry.url is not None and entry.url == redact_url(request.url)


def shared_copy(layout: StoreLayout, request: FileRequest, name: str) -> ManifestFile | None:
    """Another model's entry for the very file this request needs, when it is in the store and
    sound: the job lists it too instead of downloading a second copy (e.g. a repo's mmproj)."""
    listings = manifests_listing(layout, request.dest)
    if any(listed.entry.verify_failed_at is not None for listed in listings):
        return None  # a verify found the bytes on disk corrupt: download them again
    for listed in listings:
        if listed.model == name:
            continue
        if _same_file(request, listed.entry) and _on_disk(layout, listed.entry):
            return replace(listed.entry, role=request.role)
    return None


def replace_allowed(layout: StoreLayout, request: FileRequest, name: str) -> str | None:
    """Why a file already at the request's dest may not be overwritten by this download, or None.

    Allowed: a file this model's manifest lists (found corrupt, modified, or a re-download), a
    file another manifest lists that a verify found corrupt, or a file nobody lists that was
    already handled by `leftover_entry`. Refused: another model's sound file with other bytes."""
    listings = manifests_listing(layout, request.dest)
    if any(listed.model == name for listed in listings):
        return None
    if listings and all(listed.entry.verify_failed_at is not None for listed in listings):
        return None
    if listings:
        return (
            f"{request.dest} already exists in the store as a file of {listings[0].model} "
            f"with other content; remove that model first"
        )
    return (
        f"{request.dest} already exists in the store but is not managed: "
        f"adopt it with 'gguf-tui import' or remove it"
    )


def leftover_entry(
    layout: StoreLayout, request: FileRequest, sha256_source: str
) -> ManifestFile | None:
    """(blocking: hashes) A file nobody lists that sits at the request's dest and is exactly the
    file asked for: left by a download stopped between placing it and writing its manifest.

    Recognised by the expected SHA-256 (and size), or, without one, by the resume state that
    download left (same source, same size) and a whole GGUF header."""
    dest = layout.root / request.dest
    try:
        size = dest.stat().st_size
    except OSError:
        return None
    if not dest.is_file() or dest.is_symlink() or manifests_listing(layout, request.dest):
        return None
    if request.expected_size is not None and size != request.expected_size:
        return None
    expected = (request.expected_sha256 or "").lower()
    if not expected:
        try:
            state = ResumeState.load(layout.state_path(request.key_hash))
        except ResumeStateError:
            return None
        if state.resume_key != request.resume_key or state.total_size != size:
            return None
        if gguf_problem(dest) is not None:
            return None
        sha256_source = SHA256_RECORDED
    digest = sha256_file(dest)
    if expected and not hmac.compare_digest(digest.encode(), expected.encode()):
        return None
    layout.state_path(request.key_hash).unlink(missing_ok=True)
    return ManifestFile(
        path=request.dest,
        size=size,
        sha256=digest,
        role=request.role,
        url=redact_url(request.url),
        verified_at=time.time(),
        sha256_source=sha256_source,
    )


def gguf_problem(path: Path) -> str | None:
    """Why the bytes at `path` are not a whole GGUF model (said as what came back), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"cannot read the downloaded file: {os_message(exc)}"
    if not head:
        return "the server sent an empty file, not a GGUF file"
    if not head.startswith(b"GGUF"):
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
            return "the server sent an HTML page, not a GGUF file"
        if text.startswith((b"{", b"[")):
            return "the server sent JSON, not a GGUF file"
        if text.startswith(b"<"):
            return "the server sent an XML or HTML document, not a GGUF file"
        return f"the server sent something that is not a GGUF file (it starts with {head[:8]!r})"
    try:
        info = read_header(path)
    except GGUFError as exc:
        reason = str(exc).removeprefix(f"{os.fspath(path)}: ")
        if "truncated" in reason:
            return f"the file is truncated: {plain(reason)}"
        return f"the file is not a usable GGUF file: {plain(reason)}"
    if info.min_file_size is not None and size < info.min_file_size:
        return (
            f"the file is truncated: its header needs {info.min_file_size} bytes, got {size}"
        )
    return None


def write_manifest(
    layout: StoreLayout,
    spec: JobSpec,
    files: list[ManifestFile],
    old: Manifest | None,
    reading: dict[str, Path] | None = None,
) -> None:
    """Record the files placed so far (all of them once the model is complete), in the order
    the spec lists them. `reading` names where a file's header is read from while it is not in
    place yet (its partial). A full disk raises DiskFullError, other failures
    ManifestWriteError; either way nothing was written."""
    sweep_stale_temps(layout)
    order = {request.dest: index for index, request in enumerate(spec.files)}
    files = sorted(files, key=lambda f: order.get(f.path, len(order)))
    where = reading or {}
    facts = gguf_facts(
        [where.get(f.path, layout.root / f.path) for f in files if f.role != "mmproj"]
    )
    manifest = Manifest(
        name=spec.name,
        files=files,
        source=spec.source,
        license=spec.license or facts.get("license"),
        gguf=facts,
        added_at=old.added_at if old else time.time(),
        last_used_at=old.last_used_at if old else None,
    )
    path = layout.manifest_path(spec.name)
    try:
        manifest.save(path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"disk full while writing the manifest of {spec.name}") from None
        raise ManifestWriteError(
            f"cannot write the manifest {path}: {exc.strerror or exc}; the downloaded file is "
            f"kept: fix that, then pull again"
        ) from None


def mark_sound_elsewhere(layout: StoreLayout, entry: ManifestFile, name: str) -> None:
    """After a shared file was downloaded again, clear the 'corrupt' mark in the other models
    that list the same bytes (best effort: their next verify says the same)."""
    for listed in manifests_listing(layout, entry.path):
        if listed.model == name or listed.entry.verify_failed_at is None:
            continue
        if listed.entry.sha256 != entry.sha256:
            continue
        try:
            manifest = Manifest.load(listed.manifest_path)
            for other in manifest.files:
                if other.path == entry.path:
                    other.verify_failed_at = None
                    other.verified_at = entry.verified_at
            manifest.save(listed.manifest_path)
        except (ManifestError, OSError):
            continue


def sweep_stale_temps(layout: StoreLayout) -> list[Path]:
    """Delete JSON temp files (manifests, queue records, resume states) left by a process
    killed mid-write."""
    removed = []
    now = time.time()
    for folder in (layout.manifests_dir, layout.jobs_dir, layout.partials_dir):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not _TEMP_RE.match(name):
                continue
            path = folder / name
            try:
                stat = path.lstat()
                if now - stat.st_mtime >= STALE_TEMP_AGE:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    return removed


def gguf_facts(paths: list[Path]) -> dict:
    """GGUF header facts (parameters summed over split parts); an unreadable header is recorded,
    never fatal. Reads without touching access times, which count as 'last used'."""
    if not paths:
        return {}
    try:
        return model_facts([read_header(path) for path in paths])
    except GGUFError as exc:
        return {"error": plain(str(exc))}
    except OSError as exc:
        return {"error": os_message(exc)}


def os_message(exc: OSError) -> str:
    """One line about a failed file operation; a refused permission also says whose the file
    is and what would allow it, since in a shared store it is often another user's."""
    where = f": {exc.filename}" if exc.filename else ""
    text = f"{exc.strerror or exc}{where}"
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename:
        text += permission_hint(Path(os.fsdecode(exc.filename)))
    return text


def permission_hint(path: Path) -> str:
    """Whose `path` (or, where it does not exist, its folder) is, its group and mode, and who
    could change that: the reason a store file cannot be written, without reading any docs."""
    from gguf_tui.store.locks import user_name
    from gguf_tui.store.shared_root import group_name

    for candidate in (path, path.parent):
        try:
            info = candidate.lstat()
        except OSError:
            continue
        if info.st_uid == os.geteuid():
            return f" (yours, mode {stat.S_IMODE(info.st_mode):o})"
        what = "its folder " if candidate != path else ""
        return (
            f" ({what}owned by user {user_name(info.st_uid)}, group {group_name(info.st_gid)}, "
            f"mode {stat.S_IMODE(info.st_mode):o}: ask {user_name(info.st_uid)} to run "
            f"'chmod g+w' on it, or make the store shared: README 'A shared store on one box')"
        )
    return ""

