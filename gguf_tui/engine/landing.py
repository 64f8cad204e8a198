"""Where finished files land: what the model's manifest already records, and recording more."""

from __future__ import annotations

import time
from pathlib import Path

from gguf_tui.engine.spec import FileRequest, JobSpec
from gguf_tui.gguf import GGUFError, model_facts
from gguf_tui.store.fileio import read_header
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.manifest import Manifest, ManifestFile
from gguf_tui.textsafe import plain


def load_manifest(layout: StoreLayout, name: str) -> Manifest | None:
    """The model's manifest, None if there is none; raises ManifestError if it is corrupt."""
    path = layout.manifest_path(name)
    if not path.exists():
        return None
    return Manifest.load(path)


def already_placed(
    layout: StoreLayout, request: FileRequest, manifest: Manifest | None
) -> ManifestFile | None:
    """The manifest's entry for this file when the file is in place, whole and the same one."""
    if manifest is None:
        return None
    for entry in manifest.files:
        if entry.path != request.dest:
            continue
        dest = layout.root / entry.path
        if not dest.is_file() or dest.stat().st_size != entry.size:
            return None
        if request.expected_sha256 and request.expected_sha256.lower() != entry.sha256:
            return None
        return entry
    return None


def write_manifest(
    layout: StoreLayout, spec: JobSpec, files: list[ManifestFile], old: Manifest | None
) -> None:
    """Record the files placed so far (all of them once the model is complete)."""
    facts = gguf_facts([layout.root / f.path for f in files if f.role != "mmproj"])
    manifest = Manifest(
        name=spec.name,
        files=files,
        source=spec.source,
        license=spec.license or facts.get("license"),
        gguf=facts,
        added_at=old.added_at if old else time.time(),
        last_used_at=old.last_used_at if old else None,
    )
    manifest.save(layout.manifest_path(spec.name))


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
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"
