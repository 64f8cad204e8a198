"""Safety checks for names that come from the Hub: repo ids and paths inside a repo tree."""

from __future__ import annotations

import re

from gguf_tui.hub.errors import RefError
from gguf_tui.store.layout import UnsafePathError, check_relative_path, safe_file_name
from gguf_tui.textsafe import plain

# Hub repo ids: owner/name, letters, digits, '-', '_', '.', no '..' or '--', at most 96 each.
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")


def is_valid_repo_id(repo: str) -> bool:
    parts = repo.split("/")
    if len(parts) != 2:
        return False
    return all(
        _REPO_PART_RE.match(part) and ".." not in part and "--" not in part for part in parts
    )


def check_repo_id(repo: str) -> str:
    if not is_valid_repo_id(repo):
        raise RefError(f"not a Hub repository id: {plain(repo)!r} (expected owner/name)")
    return repo


def check_repo_path(path: str) -> str:
    """Return a reason the remote path is unsafe, or "" when it may be used.

    Folders must be plain relative names (no '..', no absolute paths, no backslashes, no control
    characters). The file name itself may carry escape sequences: it is stored under a safe
    name and printed stripped, so only separators and dot-names are refused there.
    """
    if not path:
        return "empty path"
    if "\x00" in path:
        return "path contains a NUL character"
    if "\\" in path:
        return "path contains a backslash"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "path leaves its folder or has empty segments"
    folder = "/".join(parts[:-1])
    if folder:
        try:
            check_relative_path(folder)
        except UnsafePathError as exc:
            return str(exc)
    return ""


def local_file_name(path: str) -> str:
    """The safe base name a remote file gets in the store (keeps the `.gguf` suffix)."""
    name = path.rsplit("/", 1)[-1]
    safe = safe_file_name(name)
    if name.lower().endswith(".gguf") and not safe.lower().endswith(".gguf"):
        safe = f"{safe}.gguf"
    return safe


def local_sub_path(path: str) -> str:
    """A safe sub-path ('folder/name.gguf') for files whose base names clash within a repo."""
    parts = path.split("/")
    safe = [safe_file_name(part) for part in parts[:-1]] + [local_file_name(path)]
    return check_relative_path("/".join(safe))
