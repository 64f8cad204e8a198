"""The partial downloads on disk with their saved resume state, for clients with no engine.

`status` shows these when no engine service runs (and the ones no live job owns when one does);
the resume file format stays the engine's business, behind `engine.api.partials_on_disk`.
"""

from __future__ import annotations

from pathlib import Path

from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.store.layout import STATE_SUFFIX, StoreLayout
from gguf_tui.store.locks import active_lock_owner
from gguf_tui.textsafe import redact_url


def partial_rows(store_root: Path) -> list[dict]:
    """Every partial download in the store with its resume state (unreadable ones flagged)."""
    layout = StoreLayout(store_root)
    rows: list[dict] = []
    if not layout.partials_dir.exists():
        return rows
    for state_path in sorted(layout.partials_dir.glob(f"*{STATE_SUFFIX}")):
        key_hash = state_path.name.removesuffix(STATE_SUFFIX)
        partial = layout.partial_path(key_hash)
        owner = active_lock_owner(layout.lock_path(key_hash))
        row: dict = {
            "key": key_hash,
            "partial": str(partial),
            "partial_exists": partial.exists(),
            "allocated_bytes": _allocated(partial),  # preallocated: more than bytes_done
            "owner": owner.describe() if owner else None,
            # another user whose process writes it (shown as "downloading (user NAME)")
            "owner_user": owner.user_name if owner is not None and owner.other_user else None,
        }
        try:
            state = ResumeState.load(state_path)
        except ResumeStateError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        row.update(
            {
                "dest": state.dest,
                "source": redact_url(state.resume_key.split("@")[0]),
                "bytes_done": state.bytes_done,
                "total": state.total_size,
                "ranges": state.ranges,
                "etag": state.etag,
                "last_modified": state.last_modified,
                "validator": state.validator,
                "expected_sha256": state.expected_sha256,
                "saved_at": state.saved_at,
            }
        )
        rows.append(row)
    return rows


def _allocated(partial: Path) -> int:
    from gguf_tui.store.usage import allocated_bytes

    try:
        return allocated_bytes(partial.lstat())
    except OSError:
        return 0
