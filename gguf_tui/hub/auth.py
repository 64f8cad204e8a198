"""Hub tokens: where they come from, and the only place they may be sent."""

from __future__ import annotations

import os
from pathlib import Path

from gguf_tui.httputil import origin_of  # noqa: F401 - re-exported


def hf_home(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(os.path.expanduser(home))


def token_path(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """`$HF_TOKEN_PATH`, else `$HF_HOME/token` (as huggingface_hub does)."""
    env = os.environ if environ is None else environ
    if env.get("HF_TOKEN_PATH"):
        return Path(os.path.expanduser(env["HF_TOKEN_PATH"]))
    return hf_home(env) / "token"


def get_token(environ: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """The Hub token: `HF_TOKEN`, else the token file; None when there is none.

    The value is only ever put into an `Authorization` header for the Hub's own origin.
    """
    env = os.environ if environ is None else environ
    token = (env.get("HF_TOKEN") or "").strip()
    if token:
        return token
    try:
        token = token_path(env).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
