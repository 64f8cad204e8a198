"""Start the engine service on demand (as tmux starts its server) and attach to it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from gguf_tui.config import Config
from gguf_tui.service.client import ServiceClient, ServiceError, ServiceNotRunning
from gguf_tui.service.paths import RuntimeDirError, ServicePaths, ensure_runtime_dir, service_paths

START_TIMEOUT = 20.0


def service_command(config: Config) -> list[str]:
    """The command line of a background service for this config and store."""
    command = [sys.executable, "-m", "gguf_tui", "--store", str(config.store)]
    if config.source is not None:
        command += ["--config", str(config.source)]
    return command + ["engine", "run", "--detached"]


async def start_service(config: Config, paths: ServicePaths | None = None) -> int:
    """Start a background service and wait until it answers; its pid.

    ServiceError with the service's own one line when it could not start."""
    paths = paths or service_paths(config.store)
    try:
        ensure_runtime_dir(paths)
    except RuntimeDirError as exc:
        raise ServiceError(str(exc)) from None
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    with tempfile.TemporaryFile() as early_errors:
        process = _spawn(config, env, early_errors)
        while loop.time() < deadline:
            client = ServiceClient(paths)
            try:
                await client.connect()
            except ServiceNotRunning:
                code = process.poll()
                if code is not None and code != 0:
                    early_errors.seek(0)
                    lines = early_errors.read().decode(errors="replace").strip().splitlines()
                    reason = lines[-1].removeprefix("gguf-tui: ") if lines else f"exit status {code}"
                    raise ServiceError(f"the engine service did not start: {reason}") from None
                if code == 0:
                    # It found another service holding the store (one that was still going
                    # away, or one another client started): start again once that one is gone.
                    await asyncio.sleep(0.5)  # the other one may be about to answer
                    process = _spawn(config, env, early_errors)
                await asyncio.sleep(0.05)
                continue
            pid = client.service_pid or process.pid
            await client.close()
            # Reap the service when it exits some day, so a long-lived client (the dashboard)
            # is not left holding a zombie.
            threading.Thread(target=process.wait, name="reap-engine-service", daemon=True).start()
            return pid
    raise ServiceError(
        f"the engine service did not answer within {START_TIMEOUT:g} s; see {paths.log}"
    )


def _spawn(config: Config, env: dict[str, str], early_errors) -> subprocess.Popen:
    return subprocess.Popen(
        service_command(config),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=early_errors,
        start_new_session=True,  # not in the terminal's process group: no SIGHUP, no ^C
        env=env,
        close_fds=True,
    )


async def connect_or_start(config: Config, paths: ServicePaths | None = None) -> ServiceClient:
    """Attach to the service for `config.store`, starting it when none answers.

    A socket file left by a killed service does not answer: a new service replaces it.
    Raises ServiceError (VersionMismatch, ServiceRefused...) with one line for the user."""
    paths = paths or service_paths(config.store)
    try:
        return await ServiceClient(paths).connect()
    except ServiceNotRunning:
        pass
    await start_service(config, paths)
    return await ServiceClient(paths).connect()

