"""HTTP details shared by the download engine and the Hub client (no textual, no engine state)."""

from __future__ import annotations

import email.utils
import random
import re
import time
from urllib.parse import urlsplit

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


def backoff_delay(failures: int, base: float = 0.5) -> float:
    """Exponential backoff with jitter, capped at 30 s."""
    return min(30.0, base * (2 ** (failures - 1))) * (0.75 + random.random() * 0.5)
