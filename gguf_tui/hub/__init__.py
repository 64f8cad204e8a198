"""Hugging Face Hub catalog: search, repo files grouped by quant, REF resolution for `pull`.

No Textual imports here; the TUI and the CLI are both clients of this package.
"""

from gguf_tui.hub.auth import get_token, origin_of
from gguf_tui.hub.client import HubClient
from gguf_tui.hub.errors import HubError, RefError
from gguf_tui.hub.models import (
    HubFile,
    QuantGroup,
    RepoFiles,
    RepoInfo,
    SearchResult,
    SkippedPath,
    TreeListing,
)
from gguf_tui.hub.quants import group_files, parse_quant, parse_split, pick_mmproj
from gguf_tui.hub.refs import HubRef, is_hub_ref, parse_ref, resolve_ref
from gguf_tui.hub.remote import read_remote_gguf

__all__ = [
    "HubClient",
    "HubError",
    "HubFile",
    "HubRef",
    "QuantGroup",
    "RefError",
    "RepoFiles",
    "RepoInfo",
    "SearchResult",
    "SkippedPath",
    "TreeListing",
    "get_token",
    "group_files",
    "is_hub_ref",
    "origin_of",
    "parse_quant",
    "parse_ref",
    "parse_split",
    "pick_mmproj",
    "read_remote_gguf",
    "resolve_ref",
]
