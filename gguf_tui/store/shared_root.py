"""`store.shared: true`: a store root that several users of one box write to through a group.

The root is made setgid and group-writable (as `chmod 2775` does); from then on every folder
and file gguf-tui creates below it is the group's as well (the rule is in `fsutil`:
`group_shared`, `share_new_file`, `share_new_folder`), whichever user's config says so.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from gguf_tui.fsutil import group_shared, make_folders
from gguf_tui.store.locks import user_name

SHARED_ROOT_BITS = stat.S_ISGID | stat.S_IRWXG


def group_name(gid: int) -> str:
    """The name of group `gid`, or the number where it has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return str(gid)


def prepare_shared_root(root: Path) -> tuple[list[str], str | None]:
    """Create `root` if missing and make it setgid and group-writable.

    Returns (notes, problem): notes say what was done (a new shared store, its group);
    problem is one line saying why the root is not group-shared and what to do, or None.
    """
    notes: list[str] = []
    created = not root.exists()
    try:
        make_folders(root)
        current = os.stat(root)
        if not group_shared(root) and current.st_uid == os.geteuid():
            os.chmod(root, (current.st_mode & 0o7777) | SHARED_ROOT_BITS)
            current = os.stat(root)
            if not created:
                notes.append(f"made the store {root} group-shared (mode {current.st_mode & 0o7777:o})")
    except OSError as exc:
        return notes, f"store.shared: cannot make {root} group-shared: {exc.strerror or exc}"
    group = group_name(current.st_gid)
    if created:
        notes.append(
            f"created the shared store {root} (group {group}, mode {current.st_mode & 0o7777:o}); "
            f"users of group {group} share it"
        )
    if group_shared(root):
        return notes, None
    owner = user_name(current.st_uid)
    return notes, (
        f"store.shared is on but {root} is not setgid and group-writable (owner {owner}, group "
        f"{group}, mode {current.st_mode & 0o7777:o}): files made here stay private to their "
        f"user; its owner can run 'chmod 2775 {root}'"
    )
