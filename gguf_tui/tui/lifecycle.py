"""Leaving cleanly on q, SIGTERM and SIGHUP, even when the terminal is gone: detach from the
engine service (its downloads go on), or pause and save an in-process engine's downloads."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from gguf_tui.tui.app import GgufApp

EXIT_OK = 0
EXIT_INTERRUPTED = 130  # DESIGN.md section 3: interrupted, resume state saved
SHUTDOWN_TIMEOUT = 15.0


def while_running(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Skip a handler once the app is shutting down (its widgets may already be gone)."""

    @functools.wraps(handler)
    def guarded(self: GgufApp, *args: Any) -> Any:
        if not self.is_running or self._quitting_done:
            return None
        return handler(self, *args)

    return guarded



class SignalsMixin:
    """SIGTERM / SIGHUP handling for `GgufApp`."""

    def _install_signal_handlers(self: GgufApp) -> None:
        """SIGTERM and SIGHUP leave as `q` does (detach from the service; with an in-process
        engine, pause and save), exit code 130.

        Plain `signal.signal` handlers, not the loop's: they run at once even if the loop is
        stuck writing to a terminal that has gone away. After a SIGHUP the terminal is gone, so
        its file descriptors are pointed at /dev/null first (nothing can block on or fail at
        writing the screen any more), and a watchdog ends the process if shutting down hangs.
        """
        loop = asyncio.get_running_loop()

        def handler(signum: int, _frame: object) -> None:
            if signum == signal.SIGHUP:
                detach_from_terminal()
            exit_later(SHUTDOWN_TIMEOUT + 5.0, EXIT_INTERRUPTED)
            loop.call_soon_threadsafe(self._on_signal, signum)

        for signum in (signal.SIGTERM, signal.SIGHUP):
            try:
                self._previous_handlers[signum] = signal.signal(signum, handler)
            except (ValueError, OSError):
                pass  # not the main thread

    def _on_signal(self: GgufApp, signum: int) -> None:
        """SIGTERM or SIGHUP (the SSH connection dropped): leave as `q` does."""
        self.exit_code = EXIT_INTERRUPTED
        self.run_worker(self.action_quit(), group="quit", exit_on_error=False)


    def _restore_signal_handlers(self: GgufApp) -> None:
        for signum, previous in self._previous_handlers.items():
            try:
                signal.signal(signum, previous)
            except (ValueError, OSError, TypeError):
                pass


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null (the terminal hung up)."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1, 2):
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)


def exit_later(seconds: float, code: int) -> None:
    """End the process after `seconds` if a normal exit has not happened by then.

    Resume state is also saved every few seconds while downloading, so even this exit keeps
    all but the last moments of progress; the download lock is seen as stale at once.
    """

    def watchdog() -> None:
        time.sleep(seconds)
        os._exit(code)

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()
