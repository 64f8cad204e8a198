"""Files shared by several models: one file on disk, listed by more than one manifest.

A repo's mmproj serves every quantisation of that repo, and a single-file pull and a quant pull
of the same repo name the same file. The store keeps one copy; each model's manifest lists it,
and deleting one model keeps the file while another still lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.manifest import Manifest, ManifestError, ManifestFile
from gguf_tui.store.scan import StoreModel, StoreSnapshot


@dataclass
class ListedFile:
    """One manifest's entry for a store path."""

    model: str
    entry: ManifestFile
    manifest_path: Path


def manifests_listing(layout: StoreLayout, relative: str) -> list[ListedFile]:
    """Every readable manifest's entry for the store path `relative` (unreadable ones skipped)."""
    folder = layout.manifests_dir
    found: list[ListedFile] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            manifest = Manifest.load(path)
        except ManifestError:
            continue
        for entry in manifest.files:
            if entry.path == relative:
                found.append(ListedFile(manifest.name, entry, path))
    return found


def shared_files(snapshot: StoreSnapshot, model: StoreModel) -> dict[str, list[str]]:
    """For each file of `model` that other managed models also list: their names.

    What `info` prints and the TUI detail pane can show ("also used by ...")."""
    shared: dict[str, list[str]] = {}
    for entry in model.files:
        others = [m.name for m in snapshot.claims(entry.relative) if m.name != model.name]
        if others:
            shared[entry.relative] = others
    return shared
