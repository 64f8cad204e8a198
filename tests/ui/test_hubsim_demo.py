"""The README's way to try the dashboard without the internet works (issue 11.20):
`python -m tests.helpers.hubsim_demo` says what it does and opens the dashboard on the imitation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.ui.conftest import service_pid
from tests.ui.test_signals_on_a_pty import Terminal

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")


async def test_demo_opens_the_dashboard_on_the_hub_imitation(tmp_path: Path):
    store = tmp_path / "demo-store"
    env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO_ROOT))
    env.pop("HF_ENDPOINT", None)
    argv = [sys.executable, "-m", "tests.helpers.hubsim_demo", "--store", str(store), "--size-mib", "0.1"]
    terminal = Terminal(argv, env)
    try:
        await terminal.wait_for_text(b"hubsim: opening the dashboard")
        await terminal.wait_for_text(b"Catalog")
        await terminal.wait_for_text("Local models ·".encode())  # the dashboard is up and has read the store
        await terminal.open_search(b"demo")
        await terminal.wait_for_text(b"3 repos")  # the search, answered by the imitation
        code = await terminal.quit()
        terminal.read_some()
    finally:
        terminal.close()
    assert code == 0
    assert b"dashboard closed (exit 0)" in terminal.seen
    assert store.is_dir()
    # The dashboard ran its engine itself (--local): no engine service outlives the demo.
    assert b"--local" in terminal.seen and service_pid(store) is None


def test_readme_names_the_one_way_to_try_it_offline():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "python -m tests.helpers.hubsim_demo" in readme
