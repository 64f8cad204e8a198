"""The service's log: a size-bounded file under `$XDG_STATE_HOME/gguf-tui/`, scrubbed of secrets.

Every record passes through `scrub` before it is written, so a token, a signed URL's query
string or credentials in a URL never reach the disk, whatever a message happened to contain.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

LOG_MAX_BYTES = 1024 * 1024
LOG_BACKUPS = 1  # engine-<key>.log and engine-<key>.log.1: at most 2 MiB on disk

_URL_TAIL = re.compile(r"(https?://[^\s?#\"']*)[?#][^\s\"']*")
_URL_CREDENTIALS = re.compile(r"(https?://)[^\s/@\"']+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',}]+")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")
_TOKEN_FIELD = re.compile(r"(?i)(\"?token\"?\s*[:=]\s*)(\"[^\"]*\"|[^\s,}]+)")


def scrub(text: str) -> str:
    """`text` without query strings, URL credentials, bearer tokens or Hub tokens."""
    text = _URL_TAIL.sub(r"\1", text)
    text = _URL_CREDENTIALS.sub(r"\1", text)
    text = _BEARER.sub(r"\1<redacted>", text)
    text = _HF_TOKEN.sub("<token>", text)
    return _TOKEN_FIELD.sub(r"\1<redacted>", text)


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.msg += "\n" + scrub(formatted)
            record.exc_info = None
            record.exc_text = None
        return True


def open_log(path: Path) -> logging.Logger:
    """The service's logger, writing to `path` (created 0600 in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    logger = logging.getLogger("gguf_tui.service")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_ScrubFilter())
    logger.addHandler(handler)
    return logger
