"""The suite with shared stores (issue 15: "the existing suite passes with store.shared: true").

`GGUF_TUI_TEST_SHARED=1 .venv/bin/python -m pytest` runs every test with shared stores (see
tests/conftest.py); this file runs a representative part of the suite that way on every run,
so CI covers it without running the suite twice.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gguf_tui.config import load_config
from gguf_tui.fsutil import group_shared
from tests.conftest import REPO_ROOT, SHARED_STORES

# Downloads interrupted and resumed, pause/cancel, ownership across processes, rm, prune,
# import, shared files, lock heartbeats, and the state files' modes.
SUBSET = [
    "tests/unit/test_shared_suite.py::test_shared_mode_makes_every_test_store_shared",
    "tests/unit/test_interruptions.py::test_killed_pull_resumes_from_saved_state",
    "tests/unit/test_interruptions.py::test_pause_resume_continues_from_same_byte",
    "tests/unit/test_interruptions.py::test_cancel_deletes_partial_and_state",
    "tests/unit/test_job_ownership.py::test_a_job_left_by_an_owner_that_exits_is_adopted",
    "tests/unit/test_job_ownership.py::test_rm_keeps_the_files_of_a_paused_job_in_a_live_queue",
    "tests/unit/test_engine_locks.py::test_heartbeat_is_refreshed_while_downloading",
    "tests/unit/test_net_hardening.py::test_credentials_in_url_authenticate_but_never_reach_disk_or_status",
    "tests/unit/test_store_verify_rm.py",
    "tests/unit/test_store_prune.py",
    "tests/unit/test_store_import.py",
    "tests/unit/test_shared_files.py",
]


def test_shared_mode_makes_every_test_store_shared(tmp_path, config):
    """(Runs in the subset below.) What GGUF_TUI_TEST_SHARED=1 changes, checked."""
    if not SHARED_STORES:
        pytest.skip("only meaningful with GGUF_TUI_TEST_SHARED=1 (run by the test below)")
    assert group_shared(tmp_path)
    assert config.store_shared
    assert load_config(tmp_path / "config.yaml").store_shared


def test_a_representative_subset_passes_with_shared_stores():
    if SHARED_STORES:
        pytest.skip("the whole suite already runs with shared stores")
    env = dict(os.environ, GGUF_TUI_TEST_SHARED="1", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *SUBSET],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    tail = "\n".join(done.stdout.splitlines()[-30:])
    assert done.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail, tail
