"""A real squid forward proxy on 127.0.0.1 for tests: own config, cache, logs and port.

`Squid(basic_auth={"user": "password"})` demands proxy credentials (basic_ncsa_auth with an
htpasswd file written here). The memory cache keeps whole objects (`range_offset_limit -1`:
a ranged request makes squid fetch the whole file once, then serve every range from it), so a
second download of a cacheable answer never reaches the origin. Nothing is shared with a system
squid (Debian's postinst may start one on :3128): another port, pid file, logs and service name.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.sysdeps import ensure_command

_HELPERS = ("/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _helper(name: str) -> str:
    for folder in _HELPERS:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"squid helper {name} not found in {', '.join(_HELPERS)}")


def _apr1_line(user: str, password: str) -> str:
    """An htpasswd line (`openssl passwd -apr1`, the MD5 scheme basic_ncsa_auth reads)."""
    openssl = ensure_command("openssl", "openssl")
    hashed = subprocess.run(
        [openssl, "passwd", "-apr1", "-stdin"], input=password, capture_output=True, text=True,
        check=True,
    ).stdout.strip()
    return f"{user}:{hashed}\n"


class Squid:
    """`with Squid() as proxy: proxy.url` — started with `-N` (foreground), killed on exit."""

    def __init__(self, *, basic_auth: dict[str, str] | None = None, cache: bool = True) -> None:
        self.binary = ensure_command("squid", "squid")
        self.basic_auth = basic_auth
        self.cache = cache
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        assert self.folder is not None
        return self.folder / "access.log"

    def log_lines(self) -> list[str]:
        try:
            return self.access_log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def __enter__(self) -> Squid:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _config(self, folder: Path) -> str:
        lines = [
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {folder}/squid.pid",
            f"access_log stdio:{folder}/access.log squid",
            f"cache_log {folder}/cache.log",
            "cache_store_log none",
            "buffered_logs off",
            "logfile_rotate 0",
            f"coredump_dir {folder}",
            "visible_hostname gguf-tui-test-squid",
            "shutdown_lifetime 0 seconds",
            "pinger_enable off",
            "dns_nameservers 127.0.0.1",  # targets are IP literals; never ask the outside
            "acl loopback src 127.0.0.0/8",
        ]
        if os.geteuid() == 0:
            lines.append("cache_effective_user proxy")
        if self.basic_auth is not None:
            lines += [
                f"auth_param basic program {_helper('basic_ncsa_auth')} {folder}/passwd",
                "auth_param basic realm gguf-tui-test",
                "acl authed proxy_auth REQUIRED",
                "http_access allow loopback authed",
            ]
        else:
            lines.append("http_access allow loopback")
        lines.append("http_access deny all")
        if self.cache:
            lines += [
                "cache_mem 128 MB",
                "maximum_object_size_in_memory 64 MB",
                "maximum_object_size 64 MB",
                "range_offset_limit -1",  # a Range request fetches (and caches) the whole object
                "quick_abort_min -1 KB",  # and finishes it even when the client hangs up
                "collapsed_forwarding on",
                "refresh_pattern . 60 100% 4320",
            ]
        else:
            lines += ["cache deny all"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.port = free_port()
        # Not under pytest's 0700 tmp folders: squid runs as `proxy` when started by root.
        folder = Path(tempfile.mkdtemp(prefix="gguf-squid-", dir="/tmp"))
        self.folder = folder
        if self.basic_auth:
            (folder / "passwd").write_text(
                "".join(_apr1_line(user, pw) for user, pw in self.basic_auth.items())
            )
        config = folder / "squid.conf"
        config.write_text(self._config(folder))
        if os.geteuid() == 0:
            proxy_user = pwd.getpwnam("proxy")
            for path in [folder, *folder.iterdir()]:
                os.chown(path, proxy_user.pw_uid, proxy_user.pw_gid)
        self.process = subprocess.Popen(
            [self.binary, "-N", "-f", str(config), "-n", f"gguftui{self.port}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"squid exited at start: {self._tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"squid did not listen on {self.port}: {self._tail()}")

    def _tail(self) -> str:
        assert self.folder is not None
        texts = []
        for name in ("stderr.log", "cache.log"):
            try:
                texts.append((self.folder / name).read_text(errors="replace")[-1500:])
            except OSError:
                pass
        return " | ".join(texts)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Killed, not asked: its cache is thrown away anyway, and a graceful stop takes
            # seconds. Its helpers (basic_ncsa_auth) exit on their closed pipes.
            self.process.kill()
            self.process.wait(10)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
