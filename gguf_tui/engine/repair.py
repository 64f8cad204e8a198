"""Downloading a model's files again from the source its manifest recorded (verify --repair).

The job lists every file of the model, so its manifest stays whole; files that are in place and
not marked corrupt count as placed and are not downloaded again. Each file is checked against
the SHA-256 the manifest recorded: a repair restores those bytes, never other ones.
"""

from __future__ import annotations

from gguf_tui.engine.spec import FileRequest, JobSpec
from gguf_tui.httputil import origin_of
from gguf_tui.store.manifest import Manifest


class NoRepairSource(Exception):
    """A file to repair has no recorded source to download it from (e.g. it was imported)."""


def repair_spec(manifest: Manifest, bad_paths: list[str]) -> JobSpec:
    """The download job that restores `bad_paths` of the model (every file listed, see above)."""
    hub = manifest.source.get("kind") == "hub"
    revision = manifest.source.get("revision") if hub else None
    requests = []
    for entry in manifest.files:
        if not entry.url and entry.path in bad_paths:
            how = "it was imported" if manifest.source.get("kind") == "import" else "no URL"
            raise NoRepairSource(
                f"{entry.path}: nowhere to download it from ({how}); import a good copy "
                f"or remove the model"
            )
        # A sound file without a source stays listed: the job finds it in place.
        requests.append(
            FileRequest(
                url=entry.url or "",
                dest=entry.path,
                expected_sha256=entry.sha256 or None,
                expected_size=entry.size,
                revision=str(revision) if revision else None,
                role=entry.role,
                sha256_origin=entry.sha256_source,
                auth_origin=origin_of(entry.url) if hub and entry.url else None,
            )
        )
    return JobSpec(
        name=manifest.name, files=requests, source=manifest.source, license=manifest.license
    )
