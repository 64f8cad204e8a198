"""A read-only view of Ollama's store: manifests naming content-addressed blobs.

Layout (`OLLAMA_MODELS`, else ~/.ollama/models or /usr/share/ollama/.ollama/models):
`manifests/HOST/NAMESPACE/MODEL/TAG` is an OCI-style JSON manifest whose `layers` carry a
`mediaType` and a `digest` "sha256:HEX"; the bytes are in `blobs/sha256-HEX`. The GGUF is the
layer of type `application/vnd.ollama.image.model`, a vision projector the one of type
`application/vnd.ollama.image.projector`. Manifests are never written here: Ollama imports a
model itself from a Modelfile (`gguf_tui.store.links`).
"""

from __future__ import annotations

import json
import os
import stat as stat_module
from pathlib import Path

from gguf_tui.store.others import (
    MAX_ENTRIES,
    SHA256_RE,
    TOOL_OLLAMA,
    OtherModel,
    OtherStoresSnapshot,
    SkippedEntry,
    add_facts,
    confined_file,
    make_file,
)

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
_ROLES = {MEDIA_MODEL: "model", MEDIA_PROJECTOR: "mmproj", MEDIA_ADAPTER: "adapter"}
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MAX_MANIFEST_BYTES = 1 << 20


def ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """The name `ollama list` shows: the default registry and namespace are left out."""
    if host == DEFAULT_HOST and namespace == DEFAULT_NAMESPACE:
        return f"{model}:{tag}"
    if host == DEFAULT_HOST:
        return f"{namespace}/{model}:{tag}"
    return f"{host}/{namespace}/{model}:{tag}"


def manifest_paths(root: Path) -> list[tuple[Path, tuple[str, str, str, str]]]:
    """Every `manifests/HOST/NS/MODEL/TAG` file, without following folder links."""
    base = root / "manifests"
    found: list[tuple[Path, tuple[str, str, str, str]]] = []
    if os.path.islink(base) or not base.is_dir():
        return found
    for folder, dirs, files in os.walk(base, followlinks=False):
        depth = len(Path(folder).relative_to(base).parts)
        dirs[:] = sorted(dirs)[:MAX_ENTRIES] if depth < 3 else []
        if depth != 3:
            continue
        for tag in sorted(files)[:MAX_ENTRIES]:
            parts = Path(folder).relative_to(base).parts
            found.append((Path(folder) / tag, (parts[0], parts[1], parts[2], tag)))
    return found


def read_manifest(path: Path) -> dict:
    """A manifest's JSON; ValueError saying what is wrong (a link, too big, not JSON)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"cannot read the manifest: {exc.strerror or exc}") from None
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("the manifest is not a regular file")
        raw = os.read(fd, MAX_MANIFEST_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ValueError("the manifest is too big to be one")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the manifest is not valid JSON (truncated?)") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise ValueError("the manifest has no list of layers")
    return data


def blob_path(root: Path, digest: object) -> Path | None:
    """`blobs/sha256-HEX` for a digest "sha256:HEX"; None for anything else (a path trick)."""
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    hex_digest = digest[len("sha256:"):]
    if not SHA256_RE.match(hex_digest):
        return None
    return root / "blobs" / f"sha256-{hex_digest}"


def scan_ollama(root: Path, snapshot: OtherStoresSnapshot) -> None:
    """One model per manifest that has a model layer; broken ones say which layer and why."""
    for path, (host, namespace, model_name, tag) in manifest_paths(root):
        name = ollama_name(host, namespace, model_name, tag)
        try:
            manifest = read_manifest(path)
        except ValueError as exc:
            snapshot.skipped.append(SkippedEntry(TOOL_OLLAMA, path, f"{name}: {exc}"))
            continue
        layers = [layer for layer in manifest["layers"] if isinstance(layer, dict)]
        if not any(layer.get("mediaType") == MEDIA_MODEL for layer in layers):
            snapshot.skipped.append(SkippedEntry(TOOL_OLLAMA, path, f"{name}: no model layer"))
            continue
        model = OtherModel(TOOL_OLLAMA, name, root, manifest=path)
        for layer in layers:
            role = _ROLES.get(layer.get("mediaType"))  # type: ignore[arg-type]
            if role is None:
                continue  # template, params, license, system: small text layers
            blob = blob_path(root, layer.get("digest"))
            if blob is None:
                model.problem = f"a {role} layer names a blob outside the store: " + repr(
                    str(layer.get("digest"))[:80]
                )
                continue
            usable = confined_file(root, blob)
            if isinstance(usable, str):
                if not os.path.lexists(blob):
                    usable = f"blob {blob.name} is missing"
                model.problem = f"{role} layer: {usable}"
                continue
            data_path, stat = usable
            entry = make_file(blob, data_path, stat, blob.name[len("sha256-"):])
            entry.role = role
            model.files.append(entry)
        if model.problem is None:
            add_facts(model)
        snapshot.models.append(model)


def manifests_using(root: Path, digest_hex: str) -> list[Path]:
    """The manifests whose layers reference the blob `sha256-<digest_hex>` (for prune)."""
    users = []
    for path, _parts in manifest_paths(root):
        try:
            manifest = read_manifest(path)
        except ValueError:
            continue
        digests = [layer.get("digest") for layer in manifest["layers"] if isinstance(layer, dict)]
        config = manifest.get("config")
        if isinstance(config, dict):
            digests.append(config.get("digest"))
        if f"sha256:{digest_hex}" in digests:
            users.append(path)
    return users
