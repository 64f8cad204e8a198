"""Make remote strings safe to show in a terminal and to use as file names."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit, urlunsplit

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


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without its `user:password@` part, and that pair (unquoted) if there was one.

    Credentials in a URL are kept in memory for the request only: everything that is stored,
    logged, shown or used as a key takes the first value."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))


def redact_url(url: str) -> str:
    """Drop credentials, query string and fragment from a URL (signed CDN URLs carry secrets there).

    Never raises: a URL too broken to parse (a bad port, say) is shown as its scheme and host."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<invalid url>"
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):  # an IPv6 literal: [::1]:8080
        host, _, rest = hostport.partition("]")
        host, port = host + "]", rest.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    shown = host.lower() + (f":{port}" if port.isdigit() else "")
    return plain(urlunsplit((parts.scheme, shown, parts.path, "", "")))


_URL_IN_TEXT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_urls_in(text: str) -> str:
    """`text` with every URL in it redacted (error messages of libraries quote whole URLs)."""
    return _URL_IN_TEXT_RE.sub(lambda match: redact_url(match.group(0)), str(text))
