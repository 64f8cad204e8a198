"""Queue records: each unfinished download (no secrets) under `.gguf-tui/jobs/`, so that a
restart of the CLI or the TUI shows it again, paused, ready to resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gguf_tui.engine.spec import FileRequest, JobSpec
from gguf_tui.fsutil import load_json_file, state_file_mode, write_json_atomic
from gguf_tui.store.layout import StoreLayout
from gguf_tui.textsafe import split_credentials
from gguf_tui.store.locks import OWNER_SUFFIX

RECORD_FORMAT = 1


def record_path(layout: StoreLayout, name: str) -> Path:
    return layout.jobs_dir / layout.manifest_path(name).name


def owner_lock_path(layout: StoreLayout, name: str) -> Path:
    """The lock that says which process's queue holds this download (beside the file locks, so
    `deletion_blocker` finds it; its own suffix keeps it apart from `<key>.lock`)."""
    return layout.locks_dir / f"{layout.manifest_path(name).stem}{OWNER_SUFFIX}"


def record_exists(layout: StoreLayout, name: str) -> bool:
    return record_path(layout, name).exists()


def save_record(layout: StoreLayout, spec: JobSpec, created_at: float) -> None:
    record = {
        "format": RECORD_FORMAT,
        "name": spec.name,
        "source": spec.source,
        "license": spec.license,
        "created_at": created_at,
        "files": [
            {
                "url": split_credentials(request.url)[0],  # credentials live in memory only
                "dest": request.dest,
                "expected_sha256": request.expected_sha256,
                "expected_size": request.expected_size,
                "revision": request.revision,
                "role": request.role,
                "sha256_origin": request.sha256_origin,
                "auth_origin": request.auth_origin,  # the token itself is never written
                "mirror_urls": [split_credentials(url)[0] for url in request.mirror_urls],
            }
            for request in spec.files
        ],
    }
    write_json_atomic(record_path(layout, spec.name), record, state_file_mode(layout.root))


def delete_record(layout: StoreLayout, name: str) -> None:
    record_path(layout, name).unlink(missing_ok=True)


@dataclass
class StoredJob:
    spec: JobSpec
    created_at: float


def load_records(layout: StoreLayout) -> tuple[list[StoredJob], list[str]]:
    """Every readable record, and one line per unreadable one."""
    jobs: list[StoredJob] = []
    problems: list[str] = []
    folder = layout.jobs_dir
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            raw = load_json_file(path)
            spec = JobSpec(
                name=str(raw["name"]),
                files=[FileRequest(**entry) for entry in raw["files"]],
                source=dict(raw.get("source") or {}),
                license=raw.get("license"),
            )
            jobs.append(StoredJob(spec, float(raw.get("created_at") or 0.0)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"ignored an unreadable queue record {path.name}: {exc}")
    return jobs, problems
