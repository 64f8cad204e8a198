"""Exposing one of our models to another tool without copying its bytes.

- LM Studio: a hard link at `MODELS/PUBLISHER/REPO/FILE` (the layout LM Studio scans).
- Hugging Face cache (huggingface_hub, llama.cpp `-hf`): the blob hard-linked as
  `models--OWNER--REPO/blobs/<sha256>`, a relative snapshot link to it, and `refs/main`, so
  `hf_hub_download(..., local_files_only=True)` finds it offline.
- Ollama: a Modelfile (`FROM` our file, plus the projector) for `ollama create`, which imports
  the model itself; we never write Ollama's manifests.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gguf_tui.fsutil import fsync_dir
from gguf_tui.store.fileio import sha256_file
from gguf_tui.store.layout import check_relative_path, safe_file_name
from gguf_tui.store.others_hf import hf_repo_folder
from gguf_tui.store.scan import StoreFile, StoreModel


class LinkError(Exception):
    """A model cannot be exposed there; the message says why and what to do."""


@dataclass
class LinkOutcome:
    tool: str
    paths: list[Path] = field(default_factory=list)  # what now exists in the other tool's store
    notes: list[str] = field(default_factory=list)
    command: str | None = None  # what the user runs next (Ollama)

    def to_json(self) -> dict:
        return {"to": self.tool, "paths": [str(p) for p in self.paths], "notes": self.notes,
                "command": self.command}


def _present_files(model: StoreModel) -> list[StoreFile]:
    missing = [entry.relative for entry in model.files if not entry.exists]
    if missing:
        raise LinkError(f"{model.name}: {missing[0]} is missing from the store")
    return list(model.files)


def repo_id_for(model: StoreModel) -> str:
    """OWNER/REPO: the Hub repo it came from, else `local/<name>` (a name no Hub repo has)."""
    repo = model.source.get("repo") if model.source.get("kind") == "hub" else None
    if isinstance(repo, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        return repo
    return "local/" + safe_file_name(model.name.replace("/", "-"))


def _hard_link(source: Path, dest: Path) -> bool:
    """Hard-link `source` at `dest`; False when `dest` already is that file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest):
        try:
            if os.path.samefile(source, dest) and not os.path.islink(dest):
                return False
        except OSError:
            pass
        raise LinkError(f"{dest} already exists with other content; remove it first")
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError as exc:
        why = "it is on another filesystem" if exc.errno == 18 else (exc.strerror or str(exc))
        raise LinkError(f"cannot hard-link {source} at {dest}: {why}") from None
    fsync_dir(dest.parent)
    return True


def link_to_lmstudio(model: StoreModel, models_root: Path) -> LinkOutcome:
    """Hard links in LM Studio's `PUBLISHER/REPO/` folder, file names kept."""
    outcome = LinkOutcome("lmstudio")
    folder = models_root / repo_id_for(model)
    for entry in _present_files(model):
        dest = folder / Path(entry.relative).name
        if not _hard_link(entry.path, dest):
            outcome.notes.append(f"{dest.name}: already linked")
        outcome.paths.append(dest)
    return outcome


def _commit_for(model: StoreModel, shas: list[str]) -> str:
    """The snapshot folder's name: the Hub commit we downloaded, else a stable made-up one."""
    revision = model.source.get("revision")
    if isinstance(revision, str) and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    return hashlib.sha1(("gguf-tui:" + ",".join(sorted(shas))).encode()).hexdigest()


def link_to_hf_cache(model: StoreModel, cache_root: Path) -> LinkOutcome:
    """The HF cache layout for `model`: blobs by SHA-256, snapshot links, and `refs/main`."""
    outcome = LinkOutcome("hf-cache")
    entries = _present_files(model)
    shas = []
    for entry in entries:
        sha = (entry.sha256 or "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or entry.verify_failed_at:
            sha = sha256_file(entry.path)
        elif sha256_file(entry.path) != sha:
            raise LinkError(f"{model.name}: {entry.relative} does not match its recorded "
                            "SHA-256; run 'gguf-tui verify --repair' first")
        shas.append(sha)
    repo_id = repo_id_for(model)
    repo_dir = cache_root / hf_repo_folder(repo_id)
    commit = _commit_for(model, shas)
    snapshot = repo_dir / "snapshots" / commit
    for entry, sha in zip(entries, shas):
        blob = repo_dir / "blobs" / sha
        _hard_link(entry.path, blob)
        in_repo = _repo_path(model, entry)
        link = snapshot / in_repo
        target = os.path.relpath(blob, link.parent)
        link.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(link):
            if os.path.islink(link) and os.readlink(link) == target:
                outcome.notes.append(f"{in_repo}: already linked")
                outcome.paths.append(link)
                continue
            raise LinkError(f"{link} already exists and is not our link; remove it first")
        os.symlink(target, link)
        outcome.paths.append(link)
    refs = repo_dir / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    main = refs / "main"
    current = main.read_text().strip() if main.is_file() else None
    if current is None:
        main.write_text(commit)
    elif current != commit:
        outcome.notes.append(
            f"refs/main already names {current[:12]}; ask for revision {commit} to get this copy"
        )
    outcome.notes.append(f"repo {repo_id}, revision {commit}")
    return outcome


def _repo_path(model: StoreModel, entry: StoreFile) -> str:
    """The file's path in the Hub repo when we know it (a pulled model), else its file name."""
    name = Path(entry.relative).name
    files = model.source.get("files") if model.source.get("kind") == "hub" else None
    for remote in files if isinstance(files, list) else []:
        if isinstance(remote, str) and remote.rsplit("/", 1)[-1] == name:
            try:
                return check_relative_path(remote)
            except ValueError:
                break
    return name


def ollama_model_name(model: StoreModel) -> str:
    """A name `ollama create` accepts: lower case letters, digits, '.', '_' and '-'."""
    base = re.sub(r"[^a-z0-9._-]+", "-", model.name.lower().rsplit("/", 1)[-1]).strip("-._")
    return (base or "model")[:80]


def write_ollama_modelfile(model: StoreModel, folder: Path) -> LinkOutcome:
    """A Modelfile naming our files; Ollama copies them into its store on `ollama create`."""
    entries = _present_files(model)
    parts = [e for e in entries if e.role in ("model", "part")]
    projector = model.mmproj
    outcome = LinkOutcome("ollama")
    if len(parts) > 1:
        outcome.notes.append(
            "Ollama loads single-file GGUFs: merge the parts first (llama-gguf-split --merge)"
        )
    lines = [f"# written by gguf-tui for {model.name}", f"FROM {parts[0].path if parts else ''}"]
    if projector is not None:
        lines.append(f"FROM {projector.path}")  # Ollama takes a vision projector as a 2nd FROM
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_file_name(model.name.replace('/', '-'))}.Modelfile"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text("\n".join(lines) + "\n")
    os.replace(temp, path)
    outcome.paths.append(path)
    outcome.command = f"ollama create {ollama_model_name(model)} -f {path}"
    return outcome
