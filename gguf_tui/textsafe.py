"""Make remote strings safe to show in a terminal and to use as file names."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

# CSI / OSC / other escape sequences, then any remaining C0/C1 control characters.
_ESCAPE_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS/SOS/PM/APC
    r"|\x1b[@-Z\\-_]"  # two-byte sequences
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """Strip escape sequences and control characters so a remote string prints as plain text."""
    cleaned = _ESCAPE_RE.sub("", str(text))
    cleaned = _CONTROL_RE.sub("", cleaned)
    # Also drop bidi overrides that could disguise a name.
    return "".join(ch for ch in cleaned if unicodedata.category(ch) != "Cf")


def redact_url(url: str) -> str:
    """Drop credentials, query string and fragment from a URL (signed CDN URLs carry secrets there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if ":" in (parts.hostname or "") and not host.startswith("["):
        host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return plain(urlunsplit((parts.scheme, host, parts.path, "", "")))
