"""HTTP details shared by the download engine and the Hub client (no textual, no engine state)."""

from __future__ import annotations

import email.utils
import random
import re
import time
from urllib.parse import urljoin, urlsplit

MAX_RETRY_AFTER = 600.0


def origin_of(url: str) -> str:
    """`scheme://host:port` with the port always spelled out, so comparisons are exact."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), at most 10 min."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER))


def backoff_delay(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter, never above `cap` seconds (also after days of failures:
    the exponent is bounded, so the float never overflows)."""
    plain_delay = min(cap, base * (2 ** min(max(failures, 1) - 1, 40)))
    return min(cap, plain_delay * (0.75 + random.random() * 0.5))


# ---- values from servers: checked when received, so a bad one never reaches a request or a file

# RFC 9110 entity-tag: optional W/, then a quoted string of visible ASCII except '"'. Some
# servers send the tag unquoted; that is accepted as long as it is one visible ASCII token.
_ETAG_RE = re.compile(r'(?:W/)?"[\x21\x23-\x7e]{0,1024}"|[\x21\x23-\x7e]{1,1024}')
_HTTP_DATE_RE = re.compile(r"[\x20-\x7e]{1,64}")


def valid_etag(value: str | None) -> str | None:
    """The ETag if it is well-formed (it is sent back verbatim in If-Range), else None."""
    if value is None or not _ETAG_RE.fullmatch(value):
        return None
    return value


def valid_http_date(value: str | None) -> str | None:
    """The Last-Modified value if it is a printable HTTP date (also sent back in If-Range)."""
    if value is None or not _HTTP_DATE_RE.fullmatch(value):
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return value if when is not None else None


class UnusableURL(ValueError):
    """A URL (typically a redirect's Location) that a download cannot follow."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final  # True when asking again cannot help (another scheme)


def check_http_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host and a valid port; else UnusableURL saying why."""
    if any(ord(ch) < 0x21 or 0x7F <= ord(ch) <= 0x9F for ch in url):
        raise UnusableURL("the address contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise UnusableURL(f"the address is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = re.sub(r"[^a-z0-9+.-]", "", scheme)[:20] or "no"
        raise UnusableURL(f"{shown}: addresses are not supported (only http and https)", final=True)
    if not parts.hostname:
        raise UnusableURL("the address has no host")
    return url


def resolve_location(url: str, location: str) -> str:
    """Where a redirect from `url` to `location` leads, checked before anyone follows it.

    Credentials a server puts in a redirect are dropped (never sent anywhere); an address that
    is not a usable http(s) URL (another scheme, a bad port, control characters) raises
    UnusableURL, so every client that follows redirects (engine, Hub API, remote headers) treats
    a hostile Location the same way instead of letting a ValueError escape.
    """
    from gguf_tui.textsafe import split_credentials

    try:
        target = urljoin(url, location)
    except ValueError:
        target = location
    return check_http_url(split_credentials(target)[0])

