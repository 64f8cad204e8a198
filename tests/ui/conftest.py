"""Helpers for Pilot tests of the dashboard: a bounded wait, and a local Hub with small repos."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.helpers.hubsim import HubSim
from tests.helpers.hubsim import gguf_bytes as make_gguf_bytes

WAIT = 15.0  # seconds: every wait in these tests is bounded


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = WAIT, what: str = "") -> None:
    """Let the app run until `predicate()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await pilot.pause(0.05)


@pytest.fixture
async def hub(gguf_bytes: bytes, monkeypatch: pytest.MonkeyPatch):
    """A Hub imitation with one repo (two quants + mmproj) and one repo with a markup-like file."""
    async with HubSim() as sim:
        sim.add_repo(
            "demo/Tiny-GGUF",
            {
                "Tiny-Q4_K_M.gguf": gguf_bytes,
                "Tiny-Q8_0.gguf": gguf_bytes + b"\0" * 4096,
                # A whole GGUF (a cut-off one is refused: only complete models are placed).
                "mmproj-Tiny-F16.gguf": make_gguf_bytes(tensor_bytes=(1 << 20) - 4096, arch="clip"),
            },
            downloads=120_000,
            likes=42,
        )
        sim.add_repo("demo/Other-GGUF", {"Other-Q4_K_M.gguf": gguf_bytes}, downloads=10)
        monkeypatch.setenv("HF_ENDPOINT", sim.endpoint)
        yield sim


def rows_text(app) -> list[str]:
    """The catalog's lines as plain text."""
    return [row.label.plain for row in app.query_one("#catalog").catalog_rows]


def detail_text(app) -> str:
    return app.query_one("#detail").shown.plain


@pytest.fixture
def hub_config(config, hub):
    config.hub.endpoint = hub.endpoint
    return config


async def settle(pilot, seconds: float = 0.1) -> None:
    await pilot.pause(seconds)
    await asyncio.sleep(0)
