"""What the dashboard remembers between runs: the theme last chosen in the command palette.

A small JSON file under `$XDG_STATE_HOME/gguf-tui/` (default `~/.local/state/gguf-tui/`),
written atomically. The user's config file is never rewritten. `ui.theme` in the config,
when set, still decides the theme at start (config file > remembered choice > default).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

STATE_FILE_NAME = "ui-state.json"


def state_dir() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "gguf-tui"


def ui_state_path() -> Path:
    return state_dir() / STATE_FILE_NAME


def remembered_theme() -> str | None:
    """The theme last chosen in the palette, or None (no file, unreadable, or nonsense)."""
    try:
        raw = json.loads(ui_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    theme = raw.get("theme") if isinstance(raw, dict) else None
    return theme if isinstance(theme, str) and 0 < len(theme) <= 60 else None


def remember_theme(name: str) -> None:
    """Save the chosen theme; raises OSError when the state folder cannot be written."""
    path = ui_state_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(current, dict):
            current = {}
    except (OSError, ValueError):
        current = {}
    current["theme"] = name
    handle, temp = tempfile.mkstemp(prefix=f".{STATE_FILE_NAME}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(current, out)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
