"""Real Hub mirrors on loopback in front of the Hub imitation (tests.helpers.hubsim).

- `Olah`: the Olah mirror (PyPI `olah`, a test dependency) pointed at the imitation's API and
  CDN hosts; it fetches each file once, keeps it, and serves it itself (no redirect).
- `Nginx`: nginx with a config given as its `server { }` body; `proxy_cache` keeps API answers,
  `return 503` plays a mirror that is down, `max_ranges 0` one that ignores Range.

Each runs in its own temporary folder with its own port, logs and cache, and is killed on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.squid import free_port
from tests.helpers.sysdeps import ensure_command


def _wait_listening(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start: {log.read_text(errors='replace')[-1500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text(errors='replace')[-1500:]}")


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its workers too (own process group)
    except OSError:
        process.kill()
    process.wait(10)


class Olah:
    """`with Olah(hub.api_netloc, hub.cdn_netloc) as mirror: mirror.endpoint`."""

    def __init__(self, api_netloc: str, cdn_netloc: str) -> None:
        try:
            import olah  # noqa: F401 - only to find out whether it is installed
        except ImportError:
            pytest.skip("olah is not installed (pip install -e '.[test]')")
        self.api_netloc, self.cdn_netloc = api_netloc, cdn_netloc
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Olah:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="gguf-olah-"))
        netloc = f"127.0.0.1:{self.port}"
        log = self.folder / "olah.out"
        # The console script sits beside this Python (the project's venv).
        command = [
            str(Path(sys.executable).with_name("olah-cli")),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--hf-scheme", "http", "--hf-netloc", self.api_netloc,
            "--hf-lfs-netloc", self.cdn_netloc,
            "--mirror-scheme", "http", "--mirror-netloc", netloc, "--mirror-lfs-netloc", netloc,
            "--repos-path", str(self.folder / "repos"), "--log-path", str(self.folder / "logs"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.process = subprocess.Popen(
            command, cwd=self.folder, env=env, stdin=subprocess.DEVNULL,
            stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True,
        )
        try:
            _wait_listening(self.port, self.process, "olah", log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        _stop(self.process)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class Nginx:
    """`with Nginx(server_body) as mirror: mirror.endpoint`; `{port}` and `{dir}` in the body
    are filled in. Its access log (with the Range asked and the status) is `log_lines()`."""

    def __init__(self, server_body: str) -> None:
        self.binary = ensure_command("nginx", "nginx")
        self.server_body = server_body
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        assert self.folder is not None
        try:
            return (self.folder / "access.log").read_text().splitlines()
        except FileNotFoundError:
            return []

    def __enter__(self) -> Nginx:
        self.port = free_port()
        folder = Path(tempfile.mkdtemp(prefix="gguf-nginx-", dir="/tmp"))
        self.folder = folder
        for name in ("cache", "tmp"):
            (folder / name).mkdir()
        body = self.server_body.replace("{port}", str(self.port)).replace("{dir}", str(folder))
        user = "user root;\n" if os.geteuid() == 0 else ""
        (folder / "nginx.conf").write_text(
            f"{user}worker_processes 1;\n"
            f"error_log {folder}/error.log;\npid {folder}/nginx.pid;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "  log_format mirror '$request_method $request_uri range=$http_range $status';\n"
            f"  access_log {folder}/access.log mirror;\n"
            f"  client_body_temp_path {folder}/tmp/body;\n"
            f"  proxy_temp_path {folder}/tmp/proxy;\n"
            f"  fastcgi_temp_path {folder}/tmp/fcgi;\n  uwsgi_temp_path {folder}/tmp/uwsgi;\n"
            f"  scgi_temp_path {folder}/tmp/scgi;\n"
            f"  proxy_cache_path {folder}/cache keys_zone=mirror:4m max_size=256m;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n{body}\n  }}\n"
            "}\n"
        )
        log = folder / "error.log"
        log.touch()
        self.process = subprocess.Popen(
            [self.binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),  # noqa: SIM115
            start_new_session=True,
        )
        try:
            _wait_listening(self.port, self.process, "nginx", log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        _stop(self.process)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
