"""The real program on a real pseudo-terminal.

With `--local` (the engine inside the dashboard) a hang-up (SSH dropped), SIGTERM or q pauses
the download, saves its state and ends the process (130 for a signal). With the engine service
(the default) a hang-up detaches: the download completes in the service, verified, and the
next dashboard shows it completed.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import pty
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, sha256_of
from tests.helpers.hubsim import HubSim
from tests.ui.conftest import service_pid

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")


class Terminal:
    """The app on a pty of 100x30; the test reads its output like a terminal would."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        import subprocess

        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        cwd=REPO_ROOT, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def read_some(self) -> None:
        import select

        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.seen = (self.seen + chunk)[-200_000:]

    async def wait_for_text(self, text: bytes, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{text!r} never appeared on the terminal")
            self.read_some()
            await asyncio.sleep(0.05)

    async def press_until(self, key: bytes, text: bytes, tries: int = 6, each: float = 4.0) -> None:
        """Press `key` until `text` shows: on a loaded machine the first keys after start-up
        can go missing before the dashboard reads its input."""
        for _ in range(tries - 1):
            await self.keys(key)
            try:
                await self.wait_for_text(text, timeout=each)
                return
            except AssertionError:
                if self.process.poll() is not None:
                    raise
        await self.keys(key)
        await self.wait_for_text(text, timeout=each)

    async def open_search(self, query: bytes) -> None:
        """`/`, the query and enter, once the search dialog is there to take them."""
        await self.press_until(b"/", b"Search the Hub for GGUF repos")
        await self.keys(query, b"\r")

    async def keys(self, *sequences: bytes) -> None:
        for sequence in sequences:
            os.write(self.master, sequence)
            await asyncio.sleep(0.15)
            self.read_some()

    async def quit(self, tries: int = 4, each: float = 5.0) -> int:
        """`q` until the program has exited (see press_until); its exit code."""
        for attempt in range(tries):
            await self.keys(b"q")
            try:
                return await self.wait_exit(each, kill=attempt == tries - 1)
            except AssertionError:
                continue
        raise AssertionError("the program did not exit on q")

    async def wait_exit(self, timeout: float, kill: bool = True) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                if kill:
                    self.process.kill()
                raise AssertionError("the program did not exit")
            try:
                self.read_some()
            except OSError:
                pass
            await asyncio.sleep(0.05)
        return self.process.returncode

    def close(self) -> None:
        try:
            os.close(self.master)
        except OSError:
            pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.mark.parametrize("how", ["hangup", "sigterm", "quit"])
async def test_leaving_pauses_saves_and_exits(how: str, tmp_path: Path, gguf_bytes: bytes):
    store = tmp_path / "store"
    async with HubSim() as hub:
        hub.add_repo("demo/Slow-GGUF", {"Slow-Q4_K_M.gguf": gguf_bytes}, downloads=5)
        hub.cdn_rate = 256 * 1024
        env = dict(os.environ, TERM="xterm-256color", HF_ENDPOINT=hub.endpoint, PYTHONPATH=str(REPO_ROOT))
        env.pop("NO_COLOR", None)
        argv = [sys.executable, "-m", "gguf_tui", "--store", str(store), "--local"]
        terminal = Terminal(argv, env)
        try:
            await terminal.wait_for_text(b"Catalog")
            await terminal.open_search(b"slow")
            await terminal.wait_for_text(b"demo/Slow-GGUF")
            await terminal.keys(b"\r")
            await terminal.wait_for_text(b"Q4_K_M")
            await terminal.keys(b"\x1b[B", b"d")
            await terminal.wait_for_text(b"downloading")
            partials = store / ".gguf-tui" / "partials"
            await asyncio.sleep(1.0)
            if how == "hangup":
                os.killpg(terminal.process.pid, signal.SIGHUP)
                os.close(terminal.master)  # the terminal is gone, as when SSH drops
            elif how == "sigterm":
                terminal.process.send_signal(signal.SIGTERM)
            else:  # q: the program pauses, saves, and leaves through its fast exit
                await terminal.keys(b"q")
            code = await terminal.wait_exit(timeout=15)
            if how == "quit":
                terminal.read_some()  # the last bytes the program wrote before leaving
        finally:
            terminal.close()
        assert code == (0 if how == "quit" else 130)
        if how == "quit":
            assert b"\x1b[?1049l" in terminal.seen  # the terminal got its normal screen back
        states = list(partials.glob("*.state.json"))
        assert len(states) == 1 and b'"ranges"' in states[0].read_bytes()
        assert list((store / ".gguf-tui" / "jobs").glob("*.json"))
        assert not list((store / ".gguf-tui" / "locks").glob("*.lock"))  # the lock was released


async def _start_download_on(terminal: Terminal) -> None:
    """Search the local Hub, open the repo, download its Q4_K_M: the keys a user types."""
    await terminal.wait_for_text(b"Catalog")
    await terminal.open_search(b"slow")
    await terminal.wait_for_text(b"demo/Slow-GGUF")
    await terminal.keys(b"\r")
    await terminal.wait_for_text(b"Q4_K_M")
    await terminal.keys(b"\x1b[B")
    await terminal.press_until(b"d", b"downloading")  # a key can go missing on a loaded machine


async def test_a_hangup_detaches_and_the_service_finishes_the_download(tmp_path: Path, gguf_bytes: bytes):
    """Issue 12 acceptance: started from the dashboard, completed after the pty hung up, with
    the SHA-256 verified; a dashboard started afterwards shows it completed."""
    store = tmp_path / "store"
    async with HubSim() as hub:
        hub.add_repo("demo/Slow-GGUF", {"Slow-Q4_K_M.gguf": gguf_bytes}, downloads=5)
        hub.cdn_rate = 512 * 1024  # about 6 s for the file: the hang-up comes mid-download
        env = dict(os.environ, TERM="xterm-256color", HF_ENDPOINT=hub.endpoint, PYTHONPATH=str(REPO_ROOT))
        env.pop("NO_COLOR", None)
        argv = [sys.executable, "-m", "gguf_tui", "--store", str(store)]
        terminal = Terminal(argv, env)
        try:
            await _start_download_on(terminal)
            os.killpg(terminal.process.pid, signal.SIGHUP)
            os.close(terminal.master)  # the terminal is gone, as when SSH drops
            code = await terminal.wait_exit(timeout=15)
        finally:
            terminal.close()
        assert code == 130
        pid = service_pid(store)
        assert pid is not None, "the dashboard started no engine service"
        deadline = time.monotonic() + 60
        while not (placed := [p for p in store.rglob("Slow-Q4_K_M.gguf") if ".gguf-tui" not in p.parts]):
            assert time.monotonic() < deadline, "the service did not finish the download"
            await asyncio.sleep(0.1)
        # Placed only once its SHA-256 matched the Hub's; and it is the Hub's bytes.
        assert sha256_of(placed[0]) == hashlib.sha256(gguf_bytes).hexdigest()

        terminal = Terminal(argv, env)  # come back: the service's queue shows it done
        try:
            await terminal.wait_for_text(b"Catalog")
            await terminal.wait_for_text(b"completed", timeout=20)
            await terminal.quit()
        finally:
            terminal.close()
        assert service_pid(store) == pid  # the same service all along


async def test_q_detaches_and_the_last_line_says_how_to_come_back(tmp_path: Path, gguf_bytes: bytes):
    store = tmp_path / "store"
    async with HubSim() as hub:
        hub.add_repo("demo/Slow-GGUF", {"Slow-Q4_K_M.gguf": gguf_bytes}, downloads=5)
        hub.cdn_rate = 256 * 1024
        env = dict(os.environ, TERM="xterm-256color", HF_ENDPOINT=hub.endpoint, PYTHONPATH=str(REPO_ROOT))
        env.pop("NO_COLOR", None)
        terminal = Terminal([sys.executable, "-m", "gguf_tui", "--store", str(store)], env)
        try:
            await _start_download_on(terminal)
            code = await terminal.quit()
            terminal.read_some()
        finally:
            terminal.close()
        assert code == 0
        after = terminal.seen.rsplit(b"\x1b[?1049l", 1)[-1]  # what is printed once the screen is back
        last = after.decode(errors="replace").strip().splitlines()[-1]
        assert "1 download continues in the engine service" in last
        assert "run gguf-tui to come back" in last and "gguf-tui status" in last
        assert service_pid(store) is not None  # and the service goes on with it
