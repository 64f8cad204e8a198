"""Run download work at a lower CPU and I/O priority, so a download yields to inference.

A GPU box often serves one model while it downloads the next, and llama.cpp with partial CPU
offload is bound by exactly the cores a download uses. `engine.nice` (default 10) is the CPU
niceness added to the engine service's process; `engine.ionice` its I/O scheduling class
(`idle`, `best-effort` (at its lowest level, 7) or `off`). Both apply to the whole service
process, which does nothing but downloads. `0` / `off` leaves the priority alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# linux/ioprio.h: class in the top bits, level below; "who" 1 is a process (or thread) id.
IOPRIO_CLASS_SHIFT = 13
IOPRIO_CLASS_BE = 2
IOPRIO_CLASS_IDLE = 3
IOPRIO_WHO_PROCESS = 1
SYS_IOPRIO = {"x86_64": (251, 252), "aarch64": (30, 31)}  # (ioprio_set, ioprio_get)
IONICE_CLASSES = {"best-effort": (IOPRIO_CLASS_BE, 7), "idle": (IOPRIO_CLASS_IDLE, 0)}


def _syscall_numbers() -> tuple[int, int] | None:
    return SYS_IOPRIO.get(os.uname().machine)


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def set_io_priority(ionice: str, pid: int = 0) -> str | None:
    """Set the I/O class of `pid` (0: this process); returns why not, or None when done."""
    if ionice == "off":
        return None
    numbers = _syscall_numbers()
    if numbers is None:
        return f"ionice is not supported on {os.uname().machine}"
    io_class, level = IONICE_CLASSES[ionice]
    value = (io_class << IOPRIO_CLASS_SHIFT) | level
    if _libc().syscall(numbers[0], IOPRIO_WHO_PROCESS, pid, value) != 0:
        return f"ionice {ionice}: {os.strerror(ctypes.get_errno())}"
    return None


def io_priority(pid: int = 0) -> tuple[int, int] | None:
    """(class, level) of `pid`'s I/O priority, or None where it cannot be read."""
    numbers = _syscall_numbers()
    if numbers is None:
        return None
    value = _libc().syscall(numbers[1], IOPRIO_WHO_PROCESS, pid)
    if value < 0:
        return None
    return value >> IOPRIO_CLASS_SHIFT, value & ((1 << IOPRIO_CLASS_SHIFT) - 1)


def lower_priority(nice: int, ionice: str) -> list[str]:
    """Lower this process's CPU and I/O priority; returns one line per setting that failed."""
    problems = []
    if nice > 0:
        try:
            os.nice(nice)
        except OSError as exc:
            problems.append(f"nice {nice}: {exc.strerror}")
    problem = set_io_priority(ionice)
    if problem:
        problems.append(problem)
    return problems
