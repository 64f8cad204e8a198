"""A read-only view of the Hugging Face cache (also llama.cpp's cache in newer builds).

Layout (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/huggingface/hub), as huggingface_hub
writes it: `models--OWNER--REPO/blobs/<hash>` holds the bytes (an LFS file's blob is named by its
SHA-256), `snapshots/<commit>/<path>` links to the blob, `refs/<branch>` names a commit.
"""

from __future__ import annotations

import os
import stat as stat_module
from pathlib import Path

from gguf_tui.store.others import (
    LINKED_FOLDER,
    MAX_ENTRIES,
    TOOL_HF,
    OtherStoresSnapshot,
    SkippedEntry,
    gguf_files_in,
    group_models,
    list_folder,
)


def hf_repo_folder(repo_id: str) -> str:
    """`models--OWNER--REPO`, as huggingface_hub names a model repo's cache folder."""
    return "models--" + repo_id.replace("/", "--")


def scan_hf_cache(root: Path, snapshot: OtherStoresSnapshot, tool: str = TOOL_HF) -> None:
    """`models--OWNER--REPO/{blobs,snapshots/REV/...,refs}`: GGUF files of every snapshot.

    A snapshot entry is a link into the repo's `blobs/`, named by the file's SHA-256 for LFS
    files; a link that leads anywhere else is listed as broken, never followed.
    """
    for name in list_folder(root):
        if not name.startswith("models--"):
            continue
        repo_dir = root / name
        if os.path.islink(repo_dir) or not repo_dir.is_dir():
            snapshot.skipped.append(SkippedEntry(tool, repo_dir, "not a folder (or a symlink)"))
            continue
        repo_id = "/".join(name.split("--")[1:])
        refs = _hf_refs(repo_dir)
        snapshots_dir = repo_dir / "snapshots"
        if os.path.islink(snapshots_dir) or not snapshots_dir.is_dir():
            continue
        for revision in list_folder(snapshots_dir):
            rev_dir = snapshots_dir / revision
            if os.path.islink(rev_dir):
                snapshot.skipped.append(SkippedEntry(tool, rev_dir, LINKED_FOLDER))
                continue
            if not rev_dir.is_dir():
                continue
            label = repo_id if refs.get("main") == revision else f"{repo_id}@{revision[:8]}"
            _scan_hf_snapshot(tool, repo_dir, rev_dir, f"{label}/", revision, snapshot)


def _scan_hf_snapshot(
    tool: str, repo_dir: Path, rev_dir: Path, prefix: str, revision: str,
    snapshot: OtherStoresSnapshot,
) -> None:
    for folder, dirs, _files in os.walk(rev_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))[:MAX_ENTRIES]
        relative = Path(folder).relative_to(rev_dir).as_posix()
        sub = "" if relative == "." else relative + "/"
        files = gguf_files_in(tool, repo_dir, Path(folder), snapshot, prefix + sub)
        if files:
            snapshot.models.extend(group_models(tool, repo_dir, files, revision))


def _hf_refs(repo_dir: Path) -> dict[str, str]:
    refs: dict[str, str] = {}
    folder = repo_dir / "refs"
    if os.path.islink(folder) or not folder.is_dir():
        return refs
    for name in list_folder(folder):
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if stat_module.S_ISREG(os.fstat(fd).st_mode):
                refs[name] = os.read(fd, 256).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    return refs
