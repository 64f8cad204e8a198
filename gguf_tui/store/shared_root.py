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


def prepare_shared_root(root: Path) -> str | None:
    """Create `root` if missing and make it setgid and group-writable where it is ours.

    None when it is group-shared; else one line saying why not and what to do.
    """
    try:
        make_folders(root)
        current = os.stat(root)
        if not group_shared(root) and current.st_uid == os.geteuid():
            os.chmod(root, (current.st_mode & 0o7777) | SHARED_ROOT_BITS)
            current = os.stat(root)
    except OSError as exc:
        return f"store.shared: cannot make {root} group-shared: {exc.strerror or exc}"
    if group_shared(root):
        return None
    return (
        f"store.shared is on but {root} is not setgid and group-writable (owner "
        f"{user_name(current.st_uid)}, group {group_name(current.st_gid)}, mode "
        f"{current.st_mode & 0o7777:o}): files made here stay private to their user; its "
        f"owner can run 'chmod 2775 {root}'"
    )
