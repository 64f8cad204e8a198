"""A hostile redirect `Location` is checked by every client that follows redirects.

The engine already refused bad targets (tests/unit/test_net_hardening.py); the Hub API client and
the remote header reader followed them with a bare `urljoin`, so a port of 99999999 escaped as a
ValueError (a traceback) and a `file:` target was tried as a URL. One rule, `resolve_location`,
now serves all three.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gguf_tui.httputil import UnusableURL, resolve_location
from gguf_tui.hub.errors import HubError
from gguf_tui.hub.remote import read_remote_gguf
from tests.conftest import cli_subprocess_env
from tests.unit.test_net_hardening import redirecting_server, serve

BAD_LOCATIONS = ["http://127.0.0.1:99999999/x", "file:///etc/passwd", "http://exa mple/\x01"]


@pytest.mark.parametrize("location", BAD_LOCATIONS)
def test_resolve_location_refuses_unusable_targets(location: str) -> None:
    with pytest.raises(UnusableURL):
        resolve_location("http://127.0.0.1:8000/a", location)


def test_resolve_location_keeps_good_targets_and_drops_credentials() -> None:
    assert resolve_location("http://h:1/a/b", "../c?x=1") == "http://h:1/c?x=1"
    assert resolve_location("http://h:1/a", "https://u:secret@cdn/f") == "https://cdn/f"


@pytest.mark.parametrize("location", BAD_LOCATIONS[:2])
async def test_remote_header_read_refuses_a_hostile_redirect(location: str) -> None:
    hits: list[str] = []
    async with serve(redirecting_server(location, hits)) as base:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(HubError, match="redirected to an unusable address"):
                await read_remote_gguf(f"{base}/m.gguf", session)
    assert len(hits) == 1  # not retried


@pytest.mark.parametrize("location", BAD_LOCATIONS[:2])
async def test_hub_api_redirect_to_a_hostile_target_is_one_clear_line(
    tmp_path: Path, config_file: Path, location: str
) -> None:
    hits: list[str] = []
    async with serve(redirecting_server(location, hits)) as base:
        env = cli_subprocess_env(config_file) | {"HF_ENDPOINT": base}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gguf_tui", "search", "qwen",
            env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        _out, err = await process.communicate()
    text = err.decode()
    assert process.returncode == 1, text
    assert "redirected" in text and "unusable address" in text
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
