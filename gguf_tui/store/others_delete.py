"""Deleting a model from another tool's store the way that tool would.

- HF cache (and llama.cpp's HF layout): the snapshot link; the blob only when no other snapshot
  of the repo links to it (what `hf cache delete` does).
- Ollama: the manifest; a blob only when no other manifest references it (what `ollama rm` does).
- LM Studio and llama.cpp's flat cache: the files (a projector only when no other model in the
  folder uses it; llama.cpp's `.json` etag beside its file).

Only names inside the store root are removed, and a link is removed as a link: its target is
never touched.
"""

from __future__ import annotations

import os
import stat as stat_module
from pathlib import Path

from gguf_tui.store.others import TOOL_OLLAMA, OtherModel
from gguf_tui.store.others_ollama import blob_path, manifests_using, read_manifest


class OtherDeleteError(Exception):
    """The model cannot be removed safely; nothing was removed."""


def _inside(root: Path, path: Path) -> bool:
    real_root = os.path.realpath(root)
    parent = os.path.realpath(path.parent)
    return parent == real_root or parent.startswith(real_root + os.sep)


def _unlink(root: Path, path: Path, removed: list[Path]) -> None:
    """Remove the name `path` (a file or a link, never a folder) if it is inside `root`."""
    if not _inside(root, path):
        raise OtherDeleteError(f"{path} is outside {root}: not removed")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat_module.S_ISDIR(mode):
        raise OtherDeleteError(f"{path} is a folder: not removed")
    os.unlink(path)
    removed.append(path)


def remove_other_model(model: OtherModel) -> list[Path]:
    """Remove `model` from its tool's store; returns the paths removed."""
    if model.problem is not None and model.tool != TOOL_OLLAMA:
        raise OtherDeleteError(f"{model.name} is broken ({model.problem}): remove it by hand")
    if model.tool == TOOL_OLLAMA:
        return _remove_ollama(model)
    if model.revision is not None:
        return _remove_hf(model)
    return _remove_files(model)


def _own_files(model: OtherModel) -> list:
    """The model's files, and its projector only when no other model in its folder is left."""
    own = [entry for entry in model.files if entry.role != "mmproj"]
    names = {entry.path.name for entry in model.files}
    others_left = any(
        name.lower().endswith(".gguf") and name not in names
        for folder in {entry.path.parent for entry in own}
        for name in os.listdir(folder)
    )
    if not others_left:
        own += [entry for entry in model.files if entry.role == "mmproj"]
    return own


def _remove_hf(model: OtherModel) -> list[Path]:
    repo_dir = model.root
    removed: list[Path] = []
    files = _own_files(model)
    for entry in files:
        _unlink(repo_dir / "snapshots", entry.path, removed)
    linked = _linked_blobs(repo_dir)
    for entry in files:
        blob = entry.data_path
        if os.path.realpath(blob) not in linked:
            _unlink(repo_dir / "blobs", blob, removed)
    return removed


def _linked_blobs(repo_dir: Path) -> set[str]:
    """Real paths of the blobs some snapshot entry of the repo still links to."""
    linked = set()
    for folder, dirs, files in os.walk(repo_dir / "snapshots", followlinks=False):
        for name in files + dirs:
            path = Path(folder) / name
            if path.is_symlink():
                linked.add(os.path.realpath(path))
    return linked


def _remove_ollama(model: OtherModel) -> list[Path]:
    root = model.root
    if model.manifest is None:
        raise OtherDeleteError(f"{model.name}: no manifest to remove")
    try:
        manifest = read_manifest(model.manifest)
        digests = [layer.get("digest") for layer in manifest["layers"] if isinstance(layer, dict)]
        config = manifest.get("config")
        if isinstance(config, dict):
            digests.append(config.get("digest"))
    except ValueError:
        digests = []  # a damaged manifest: remove it, and let `ollama` collect its blobs
    removed: list[Path] = []
    _unlink(root / "manifests", model.manifest, removed)
    for digest in digests:
        blob = blob_path(root, digest)
        if blob is None:
            continue  # a digest that is not one names nothing we may remove
        if not manifests_using(root, blob.name[len("sha256-"):]):
            _unlink(root / "blobs", blob, removed)
    return removed


def _remove_files(model: OtherModel) -> list[Path]:
    removed: list[Path] = []
    for entry in _own_files(model):
        _unlink(model.root, entry.path, removed)
        sidecar = entry.path.with_name(entry.path.name + ".json")  # llama.cpp's etag file
        if os.path.isfile(sidecar) and not os.path.islink(sidecar):
            _unlink(model.root, sidecar, removed)
    return removed
