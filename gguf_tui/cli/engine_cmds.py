"""`gguf-tui engine run|start|stop|status|unit`: the per-user engine service."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys

from gguf_tui.cli import EXIT_FAILED, EXIT_OK
from gguf_tui.config import Config
from gguf_tui.service.client import (
    ServiceClient,
    ServiceError,
    ServiceGone,
    ServiceNotRunning,
    VersionMismatch,
)
from gguf_tui.service.paths import service_paths


def run_engine_action(args: argparse.Namespace, config: Config) -> int:
    """`engine ACTION`: the action's function."""
    actions = {
        "run": run_engine,
        "start": start_engine,
        "stop": stop_engine,
        "status": status_engine,
        "unit": unit_engine,
    }
    return actions[args.engine_func](args, config)


def _fail(message: str) -> int:
    print(f"gguf-tui: {message}", file=sys.stderr)
    return EXIT_FAILED


def run_engine(args: argparse.Namespace, config: Config) -> int:
    """`engine run`: the service in the foreground (systemd runs this)."""
    from gguf_tui.service.server import run_service

    return run_service(config, detached=args.detached)


def start_engine(args: argparse.Namespace, config: Config) -> int:
    from gguf_tui.service.spawn import start_service

    async def start() -> int:
        paths = service_paths(config.store)
        try:
            async with await ServiceClient(paths).connect() as client:
                print(f"the engine service is already running (pid {client.service_pid})")
                return EXIT_OK
        except ServiceNotRunning:
            pass
        pid = await start_service(config, paths)
        print(f"engine service started (pid {pid}) for {config.store}")
        return EXIT_OK

    try:
        return asyncio.run(start())
    except ServiceError as exc:
        return _fail(str(exc))


def stop_engine(args: argparse.Namespace, config: Config) -> int:
    async def stop() -> int:
        paths = service_paths(config.store)
        try:
            client = await ServiceClient(paths).connect()
        except ServiceNotRunning:
            print(f"no engine service is running for {config.store}")
            return EXIT_OK
        except VersionMismatch as exc:
            # An older or newer service: it cannot take our calls, but it stops on SIGTERM
            # exactly as on `engine stop` (pauses and saves everything).
            if exc.pid is None:
                raise
            os.kill(int(exc.pid), signal.SIGTERM)
            await _wait_gone(paths)
            print(f"engine service stopped (pid {exc.pid}); downloads paused and saved")
            return EXIT_OK
        pid = client.service_pid
        try:
            await client.stop()
        except ServiceGone:
            pass
        finally:
            await client.close()
        await _wait_gone(paths)
        print(f"engine service stopped (pid {pid}); downloads paused and saved")
        return EXIT_OK

    try:
        return asyncio.run(stop())
    except ServiceError as exc:
        return _fail(str(exc))


async def _wait_gone(paths, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while paths.socket.exists() and loop.time() < deadline:
        await asyncio.sleep(0.05)


def status_engine(args: argparse.Namespace, config: Config) -> int:
    async def status() -> int:
        paths = service_paths(config.store)
        try:
            async with await ServiceClient(paths).connect() as client:
                info = await client.status()
        except ServiceNotRunning:
            if args.json:
                print(json.dumps({"running": False, "store": str(config.store), "socket": str(paths.socket)}))
            else:
                print(f"no engine service is running for {config.store}")
            return EXIT_FAILED
        info["running"] = True
        if args.json:
            print(json.dumps(info, indent=1))
        else:
            print(
                f"engine service running: pid {info['pid']}, gguf-tui {info['version']}, "
                f"{info['active']} active of {info['jobs']} job(s), {info['clients']} client(s)\n"
                f"store  {info['store']}\nsocket {info['socket']}\nlog    {info['log']}"
            )
        return EXIT_OK

    try:
        return asyncio.run(status())
    except ServiceError as exc:
        return _fail(str(exc))


def systemd_unit(config: Config) -> str:
    """A systemd user unit that runs the service for this store in the foreground."""
    command = [sys.executable, "-m", "gguf_tui", "--store", str(config.store)]
    if config.source is not None:
        command += ["--config", str(config.source)]
    command += ["engine", "run"]
    return (
        "# ~/.config/systemd/user/gguf-tui-engine.service\n"
        "# systemctl --user daemon-reload && systemctl --user enable --now gguf-tui-engine\n"
        "# loginctl enable-linger $USER   # keep it running with nobody logged in\n"
        "[Unit]\n"
        "Description=gguf-tui download engine\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={shlex.join(command)}\n"
        "# SIGTERM pauses every download and saves its resume state; the service exits 0.\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=60\n"
        "Restart=on-failure\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def unit_engine(args: argparse.Namespace, config: Config) -> int:
    print(systemd_unit(config), end="")
    return EXIT_OK
