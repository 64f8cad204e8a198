"""The engine service runs its downloads at a lower CPU and I/O priority (issue 16, item 3).

A real service process is started; its niceness is read from /proc and its I/O class with the
ioprio_get system call, with the default settings and with both turned off.
"""

from __future__ import annotations

import os

import pytest

from gguf_tui.engine.priority import IOPRIO_CLASS_BE, io_priority
from tests.unit.test_service_process import make_svc, stop_leftover


def _nice_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(") ", 1)[1].split()[16])  # field 19: nice


@pytest.mark.parametrize(
    ("settings", "expected_nice", "expected_io"),
    [
        ("", 10, (IOPRIO_CLASS_BE, 7)),
        ("  nice: 0\n  ionice: off\n", 0, None),
    ],
)
def test_the_service_lowers_its_priority_unless_told_not_to(
    tmp_path, monkeypatch, store, settings, expected_nice, expected_io
):
    if io_priority(0) is None:
        pytest.skip("ioprio_get is not available on this machine")
    svc = make_svc(tmp_path, monkeypatch, store, idle=120)
    svc.config_file.write_text(svc.config_file.read_text() + settings)
    try:
        started = svc.run_cli("engine", "start")
        assert started.returncode == 0, started.stderr
        pid = svc.service_pid()
        assert pid is not None
        assert _nice_of(pid) == os.nice(0) + expected_nice
        own = io_priority(0)
        assert io_priority(pid) == (expected_io or own)
    finally:
        stop_leftover(svc)
