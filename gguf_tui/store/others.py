"""Read-only views of the other tools' model stores: what they hold, and llama.cpp, LM Studio.

The Hugging Face cache is read by `gguf_tui.store.others_hf`, Ollama's store by
`gguf_tui.store.others_ollama`. Nothing here writes: a scan lists what
each tool holds (its name for the model as that tool shows it, the files, their size, GGUF
facts, and the SHA-256 where the layout gives it for free) and says why anything it cannot use
is broken or skipped. A symlink is followed only when its target stays inside the store root
it was found in, so a planted link never leads a reader (or, later, dedupe) outside.
"""

from __future__ import annotations

import os
import re
import stat as stat_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gguf_tui.gguf import GGUFError
from gguf_tui.store.fileio import read_header
from gguf_tui.store.scan import SPLIT_RE

TOOL_HF = "hf"
TOOL_LLAMA_CPP = "llama.cpp"
TOOL_LMSTUDIO = "lmstudio"
TOOL_OLLAMA = "ollama"
TOOL_OURS = "gguf-tui"
OTHER_TOOLS = (TOOL_HF, TOOL_LLAMA_CPP, TOOL_LMSTUDIO, TOOL_OLLAMA)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# A store holds at most this many entries per folder level we read (a bound on hostile trees).
MAX_ENTRIES = 100_000


@dataclass
class OtherFile:
    """One file of another tool's model: the path that tool uses and where its bytes are."""

    path: Path  # the entry the tool reads (an HF snapshot link, an Ollama blob, a .gguf file)
    data_path: Path  # the regular file holding the bytes (`path` itself unless a link)
    size: int
    device: int
    inode: int
    links: int
    mtime_ns: int
    role: str = "model"  # model, part, mmproj, adapter
    sha256: str | None = None  # given by the layout (HF LFS blob name, Ollama digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "data_path": str(self.data_path),
            "role": self.role,
            "size": self.size,
            "sha256": self.sha256,
            "links": self.links,
        }


@dataclass
class OtherModel:
    """A model as another tool holds it; `problem` says why it cannot be used, when broken."""

    tool: str
    name: str  # as that tool shows it
    root: Path  # the store root it was found in
    files: list[OtherFile] = field(default_factory=list)
    gguf: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    revision: str | None = None  # HF cache: the snapshot's commit
    manifest: Path | None = None  # Ollama: the manifest file naming its layers

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def main_file(self) -> OtherFile | None:
        return next((f for f in self.files if f.role not in ("mmproj", "adapter")), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.tool,
            "name": self.name,
            "root": str(self.root),
            "revision": self.revision,
            "size": self.size,
            "files": [entry.to_json() for entry in self.files],
            "quant": self.gguf.get("quantization"),
            "architecture": self.gguf.get("architecture"),
            "parameter_count": self.gguf.get("parameter_count"),
            "context_length": self.gguf.get("context_length"),
            "problem": self.problem,
        }


@dataclass
class SkippedEntry:
    """Something in another store that is not listed as a model, and why."""

    tool: str
    path: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.tool, "path": str(self.path), "reason": self.reason}


@dataclass
class OtherStoresSnapshot:
    """Every other tool's models found in the configured places."""

    models: list[OtherModel] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    roots: dict[str, list[Path]] = field(default_factory=dict)  # tool -> roots that exist

    @property
    def total_size(self) -> int:
        """Bytes the other stores hold: each file's data once, however many links reach it."""
        seen: dict[tuple[int, int], int] = {}
        for model in self.models:
            for entry in model.files:
                seen[(entry.device, entry.inode)] = entry.size
        return sum(seen.values())

    def of_tool(self, tool: str) -> list[OtherModel]:
        return [model for model in self.models if model.tool == tool]

    def to_json(self) -> dict[str, Any]:
        return {
            "roots": {tool: [str(p) for p in paths] for tool, paths in self.roots.items()},
            "models": [model.to_json() for model in self.models],
            "skipped": [entry.to_json() for entry in self.skipped],
            "total_size": self.total_size,
        }


# ---- where the stores are ----------------------------------------------------------------------


def default_places(env: Mapping[str, str] | None = None) -> dict[str, list[Path]]:
    """Each tool's store folders as that tool finds them (its environment variables first)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    cache_home = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    if env.get("HF_HUB_CACHE"):
        hf = Path(env["HF_HUB_CACHE"])
    elif env.get("HF_HOME"):
        hf = Path(env["HF_HOME"]) / "hub"
    else:
        hf = cache_home / "huggingface" / "hub"
    llama = Path(env["LLAMA_CACHE"]) if env.get("LLAMA_CACHE") else cache_home / "llama.cpp"
    if env.get("OLLAMA_MODELS"):
        ollama = [Path(env["OLLAMA_MODELS"])]
    else:
        ollama = [home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
    return {
        TOOL_HF: [hf.expanduser()],
        TOOL_LLAMA_CPP: [llama.expanduser()],
        TOOL_LMSTUDIO: [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"],
        TOOL_OLLAMA: [path.expanduser() for path in ollama],
    }


def configured_places(config: Any, env: Mapping[str, str] | None = None) -> dict[str, list[Path]]:
    """The places from the config's `other_stores` section; a key left null uses the default."""
    places = default_places(env)
    section = getattr(config, "other_stores", None)
    if section is None:
        return places
    for tool, key in _CONFIG_KEYS.items():
        value = getattr(section, key, None)
        if value is not None:
            places[tool] = [Path(os.path.expanduser(p)) for p in value]
    return places


_CONFIG_KEYS = {
    TOOL_HF: "hf_cache",
    TOOL_LLAMA_CPP: "llama_cpp",
    TOOL_LMSTUDIO: "lmstudio",
    TOOL_OLLAMA: "ollama",
}


# ---- scanning ----------------------------------------------------------------------------------


def scan_other_stores(
    places: Mapping[str, list[Path]], *, exclude: Path | None = None
) -> OtherStoresSnapshot:
    """Every model the other tools hold in `places`; `exclude` (our store) is never read."""
    from gguf_tui.store.others_hf import scan_hf_cache
    from gguf_tui.store.others_ollama import scan_ollama

    snapshot = OtherStoresSnapshot()
    seen_roots: set[str] = set()
    excluded = os.path.realpath(exclude) if exclude is not None else None
    scanners = {
        TOOL_HF: lambda root, snap: scan_hf_cache(root, snap, TOOL_HF),
        TOOL_LLAMA_CPP: scan_llama_cpp,
        TOOL_LMSTUDIO: scan_lmstudio,
        TOOL_OLLAMA: scan_ollama,
    }
    for tool in OTHER_TOOLS:
        for root in places.get(tool, []):
            real = os.path.realpath(root)
            if real in seen_roots or not os.path.isdir(real):
                continue
            if excluded and (real == excluded or real.startswith(excluded + os.sep)):
                continue
            seen_roots.add(real)
            snapshot.roots.setdefault(tool, []).append(Path(root))
            try:
                scanners[tool](Path(root), snapshot)
            except OSError as exc:
                snapshot.skipped.append(
                    SkippedEntry(tool, Path(root), f"cannot read: {exc.strerror or exc}")
                )
    return snapshot


def scan_configured(config: Any) -> OtherStoresSnapshot:
    """The other stores named by `config` (for the CLI and, later, the TUI's catalog source
    column): our own store is excluded even when a place points into it."""
    return scan_other_stores(configured_places(config), exclude=getattr(config, "store", None))


LINKED_FOLDER = "a symlinked folder (not followed: it may lead out of the store)"


def list_folder(folder: Path) -> list[str]:
    names = sorted(os.listdir(folder))
    return names[:MAX_ENTRIES]


def confined_file(root: Path, path: Path) -> tuple[Path, os.stat_result] | str:
    """(data path, its stat) for `path`, or why it cannot be used: links must stay in `root`."""
    try:
        link_stat = os.lstat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    data_path = path
    if stat_module.S_ISLNK(link_stat.st_mode):
        target = os.path.realpath(path)
        real_root = os.path.realpath(root)
        if not target.startswith(real_root + os.sep):
            return f"symlink points outside the store ({os.readlink(path)})"
        if not os.path.lexists(target):
            return f"dangling symlink: {os.readlink(path)} does not exist"
        data_path = Path(target)
    try:
        data_stat = os.lstat(data_path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat_module.S_ISREG(data_stat.st_mode):
        return "not a regular file"
    return data_path, data_stat


def make_file(path: Path, data_path: Path, stat: os.stat_result, sha256: str | None) -> OtherFile:
    return OtherFile(
        path=path,
        data_path=data_path,
        size=stat.st_size,
        device=stat.st_dev,
        inode=stat.st_ino,
        links=stat.st_nlink,
        mtime_ns=stat.st_mtime_ns,
        sha256=sha256,
    )


def group_models(
    tool: str, root: Path, files: list[tuple[str, OtherFile]], revision: str | None = None
) -> list[OtherModel]:
    """Models from (display name, file) pairs of one folder: split parts together, a folder's
    projector (mmproj) attached to each of its models."""
    projectors, groups = [], {}
    for display, entry in files:
        facts = file_facts(entry)
        is_mmproj = facts.get("is_mmproj") if "error" not in facts else (
            entry.path.name.lower().startswith("mmproj")
        )
        if is_mmproj:
            entry.role = "mmproj"
            projectors.append((display, entry))
            continue
        split = SPLIT_RE.match(entry.path.name)
        key = (split.group("stem"), split.group("count")) if split else (entry.path.name,)
        groups.setdefault(key, []).append((display, entry))
    models = []
    for members in groups.values():
        members.sort(key=lambda pair: pair[1].path.name)
        if len(members) > 1:
            for _display, entry in members:
                entry.role = "part"
        model = OtherModel(tool, members[0][0], root, [e for _, e in members], revision=revision)
        model.files.extend(entry for _, entry in projectors)
        models.append(model)
    if not groups:
        models = [OtherModel(tool, d, root, [e], revision=revision) for d, e in projectors]
    for model in models:
        add_facts(model)
    return models


# Facts kept per file: what a listing shows, not the whole header (thousands of files fit).
_FACT_KEYS = ("architecture", "name", "quantization", "parameter_count", "context_length",
              "split_index", "split_count", "projector_type", "license")
_facts_cache: dict[tuple[int, int, int, int], dict[str, Any]] = {}
_FACTS_CACHE_LIMIT = 50_000


def file_facts(entry: OtherFile) -> dict[str, Any]:
    """A file's GGUF facts ({"error": why} when unreadable), remembered per device, inode,
    size and mtime: a warm scan of thousands of files reads no header again."""
    key = (entry.device, entry.inode, entry.size, entry.mtime_ns)
    facts = _facts_cache.get(key)
    if facts is not None:
        return facts
    try:
        info = read_header(entry.data_path)
    except GGUFError as exc:
        facts = {"error": str(exc)}
    else:
        facts = {name: getattr(info, name) for name in _FACT_KEYS}
        facts["is_mmproj"] = info.is_mmproj
        facts["explicit_count"] = "general.parameter_count" in info.metadata
    if len(_facts_cache) >= _FACTS_CACHE_LIMIT:
        _facts_cache.pop(next(iter(_facts_cache)))
    _facts_cache[key] = facts
    return facts


def add_facts(model: OtherModel) -> None:
    """The model's facts from its main file; parameters summed over split parts."""
    usable = []
    for entry in model.files:
        facts = file_facts(entry)
        if "error" in facts:
            model.problem = model.problem or (
                f"{entry.path.name}: not a readable GGUF ({facts['error']})"
            )
            continue
        usable.append(facts)
    main = [facts for facts in usable if not facts["is_mmproj"]] or usable
    if not main:
        return
    model.gguf = {k: v for k, v in main[0].items() if k in _FACT_KEYS}
    counts = [facts["parameter_count"] for facts in main]
    if len(main) > 1 and not main[0]["explicit_count"] and None not in counts:
        model.gguf["parameter_count"] = sum(counts)


def gguf_files_in(
    tool: str, root: Path, folder: Path, snapshot: OtherStoresSnapshot, prefix: str
) -> list[tuple[str, OtherFile]]:
    """The *.gguf entries directly in `folder`, each checked; broken ones listed as models."""
    found = []
    for name in list_folder(folder):
        if not name.lower().endswith(".gguf") or name.startswith("."):
            continue
        path = folder / name
        usable = confined_file(root, path)
        if isinstance(usable, str):
            snapshot.models.append(OtherModel(tool, prefix + name, root, problem=usable))
            continue
        data_path, stat = usable
        sha = data_path.name if SHA256_RE.match(data_path.name) else None
        found.append((prefix + name, make_file(path, data_path, stat, sha)))
    return found


# ---- llama.cpp and LM Studio -------------------------------------------------------------------


def scan_llama_cpp(root: Path, snapshot: OtherStoresSnapshot) -> None:
    """llama.cpp's cache: the HF cache layout of newer builds, and the old flat *.gguf files."""
    from gguf_tui.store.others_hf import scan_hf_cache

    scan_hf_cache(root, snapshot, TOOL_LLAMA_CPP)
    files = gguf_files_in(TOOL_LLAMA_CPP, root, root, snapshot, "")
    if files:
        snapshot.models.extend(group_models(TOOL_LLAMA_CPP, root, files))


def scan_lmstudio(root: Path, snapshot: OtherStoresSnapshot) -> None:
    """LM Studio's `PUBLISHER/REPO/*.gguf` (the same in the older ~/.cache/lm-studio/models)."""
    for publisher in list_folder(root):
        publisher_dir = root / publisher
        if publisher.startswith("."):
            continue
        if os.path.islink(publisher_dir):
            snapshot.skipped.append(SkippedEntry(TOOL_LMSTUDIO, publisher_dir, LINKED_FOLDER))
            continue
        if not publisher_dir.is_dir():
            continue
        for repo in list_folder(publisher_dir):
            repo_dir = publisher_dir / repo
            if repo.startswith(".") or not repo_dir.is_dir():
                continue
            if os.path.islink(repo_dir):
                snapshot.skipped.append(SkippedEntry(TOOL_LMSTUDIO, repo_dir, LINKED_FOLDER))
                continue
            prefix = f"{publisher}/{repo}/"
            files = gguf_files_in(TOOL_LMSTUDIO, root, repo_dir, snapshot, prefix)
            if files:
                snapshot.models.extend(group_models(TOOL_LMSTUDIO, root, files))
