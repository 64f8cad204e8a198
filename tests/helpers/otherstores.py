"""Other tools' stores built on disk exactly as those tools write them, and a CLI runner.

LM Studio (`~/.lmstudio/models`, older `~/.cache/lm-studio/models`):
    PUBLISHER/REPO/FILE.gguf          plain files (LM Studio downloads them there), an mmproj
                                      file beside the model in the same folder.

Ollama (`OLLAMA_MODELS`, else `~/.ollama/models`):
    blobs/sha256-<hex>                content-addressed: the file's SHA-256 is its name
    manifests/registry.ollama.ai/library/MODEL/TAG
                                      {"schemaVersion": 2,
                                       "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                                  "digest": "sha256:<hex>", "size": N},
                                       "layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                   "digest": "sha256:<hex>", "size": N},
                                                  {"mediaType": "application/vnd.ollama.image.projector", ...},
                                                  {"mediaType": "application/vnd.ollama.image.template", ...}]}
    Two tags of one model (`latest` and `7b`) share every blob.

llama.cpp old flat cache (`LLAMA_CACHE`, else `~/.cache/llama.cpp`):
    OWNER_REPO_FILE.gguf plus OWNER_REPO_FILE.gguf.json (its etag), side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_ollama_blob(root: Path, data: bytes) -> str:
    """Store `data` as Ollama does (blobs/sha256-HEX); returns its digest 'sha256:HEX'."""
    hex_digest = sha256_bytes(data)
    blob = root / "blobs" / f"sha256-{hex_digest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        blob.write_bytes(data)
    return f"sha256:{hex_digest}"


def write_ollama_model(
    root: Path,
    model: str,
    tag: str,
    gguf: bytes,
    *,
    projector: bytes | None = None,
    namespace: str = "library",
    host: str = "registry.ollama.ai",
) -> Path:
    """A pulled Ollama model: blobs and the manifest `ollama pull` writes; returns the manifest."""
    config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
    template = b"{{ .Prompt }}"
    layers = [{"mediaType": "application/vnd.ollama.image.model",
               "digest": put_ollama_blob(root, gguf), "size": len(gguf)}]
    if projector is not None:
        layers.append({"mediaType": "application/vnd.ollama.image.projector",
                       "digest": put_ollama_blob(root, projector), "size": len(projector)})
    layers.append({"mediaType": "application/vnd.ollama.image.template",
                   "digest": put_ollama_blob(root, template), "size": len(template)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": put_ollama_blob(root, config),
                   "size": len(config)},
        "layers": layers,
    }
    path = root / "manifests" / host / namespace / model / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


def write_lmstudio_model(root: Path, publisher: str, repo: str, files: dict[str, bytes]) -> Path:
    folder = root / publisher / repo
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def other_stores_config(store: Path, places: dict[str, Path | None]) -> str:
    """A test config naming every other store explicitly (nothing of the machine is read)."""
    lines = [f"store: {store}", "other_stores:"]
    for key in ("hf_cache", "llama_cpp", "lmstudio", "ollama"):
        place = places.get(key)
        lines.append(f"  {key}: [{json.dumps(str(place))}]" if place else f"  {key}: []")
    return "\n".join(lines) + "\n"


def run_cli(config_file: Path, *args: str, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """`gguf-tui ARGS` as its own process with this config."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["GGUF_TUI_CONFIG"] = str(config_file)
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "gguf_tui", *args], env=full_env, capture_output=True, text=True,
        timeout=120, input=stdin,
    )


def write_hf_cache_model(cache: Path, repo_id: str, files: dict[str, bytes],
                         revision: str = "a" * 40, branch: str = "main") -> Path:
    """A repo in the Hugging Face cache as huggingface_hub writes it: each file's bytes in
    `blobs/<sha256>` (an LFS file's blob is named by its SHA-256), `snapshots/<revision>/<name>`
    a relative symlink to the blob, `refs/<branch>` holding the revision; returns the repo folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        digest = sha256_bytes(data)
        blob = repo / "blobs" / digest
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(name).parts) + 1  # snapshots/<rev>/<name...> up to the repo folder
        os.symlink("../" * depth + f"blobs/{digest}", link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / branch).write_text(revision)
    return repo


def build_box(base: Path, gguf: bytes, other: bytes, projector: bytes) -> dict[str, Path]:
    """A GPU box's stores under `base`, each written as its tool writes it; `gguf`, `other`
    and `projector` are whole GGUF files:
    - HF cache: acme/Tiny-GGUF with Tiny-Q4_0.gguf (`gguf`);
    - Ollama: tiny:latest, the same `gguf` bytes plus a projector (a duplicate both layouts
      name by SHA-256, so it is known without hashing);
    - LM Studio: lmstudio-community/Other-GGUF/Other-Q8_0.gguf (`other`);
    - llama.cpp's flat cache: the same `other` bytes again (a duplicate only hashing proves).
    Returns the store roots by config key (for `other_stores_config`)."""
    places = {
        "hf_cache": base / "hf" / "hub",
        "llama_cpp": base / "llama.cpp",
        "lmstudio": base / ".lmstudio" / "models",
        "ollama": base / "ollama",
    }
    write_hf_cache_model(places["hf_cache"], "acme/Tiny-GGUF", {"Tiny-Q4_0.gguf": gguf})
    write_ollama_model(places["ollama"], "tiny", "latest", gguf, projector=projector)
    write_lmstudio_model(places["lmstudio"], "lmstudio-community", "Other-GGUF",
                         {"Other-Q8_0.gguf": other})
    places["llama_cpp"].mkdir(parents=True, exist_ok=True)
    (places["llama_cpp"] / "acme_Other-GGUF_Other-Q8_0.gguf").write_bytes(other)
    return places
