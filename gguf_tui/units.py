"""Parsing and formatting of sizes, rates and durations used on the command line and in config."""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str | int | float) -> int:
    """Parse '50M', '1.5G', '2GiB', '1024' into bytes (binary multiples: 1M = 1024*1024)."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"size must not be negative: {text!r}")
        return int(text)
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 500M, 2G, 1.5T)")
    number, unit, _ = match.groups()
    power = " kmgtp".index(unit.lower()) if unit else 0
    return int(float(number) * (1024**power))


def parse_duration(text: str | int | float) -> float:
    """Parse '30d', '12h', '1w2d', '90' (seconds) into seconds."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    stripped = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped)
    total = 0.0
    position = 0
    for match in _DURATION_RE.finditer(stripped):
        if stripped[position : match.start()].strip():
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    if position == 0 or stripped[position:].strip():
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 90m)")
    return total


def format_size(num_bytes: int | float | None) -> str:
    """Format bytes with decimal units the way download tools show them (4.68 GB)."""
    if num_bytes is None:
        return "?"
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def format_rate(bytes_per_second: float | None) -> str:
    if not bytes_per_second:
        return "-"
    return format_size(bytes_per_second) + "/s"


def floor_percent(done: int, total: int | None) -> int | None:
    """Whole percent done, rounded down: 100 only once every byte is there (never early)."""
    if not total or total <= 0:
        return None
    if done >= total:
        return 100
    return max(0, min(99, (100 * done) // total))


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or seconds != seconds:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
