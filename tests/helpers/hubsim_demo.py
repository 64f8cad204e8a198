"""Try the dashboard without the internet: `python -m tests.helpers.hubsim_demo` starts the local
Hub imitation with small demo repos and opens `gguf-tui` against it, with a store of its own.
`--serve-only` (also `python -m tests.helpers.hubsim`) only serves it, for the CLI or a dashboard
started by hand with `HF_ENDPOINT=...`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.helpers.hubsim import DEFAULT_TOKEN, HubSim, SimFile, gguf_bytes


def demo_hub(size_mib: float = 2.0, **kwargs: Any) -> HubSim:
    """A HubSim with demo repos: one with Q4_K_M/Q8_0 + mmproj, a 3-part split, a gated one."""
    hub = HubSim(**kwargs)
    unit = max(16 * 1024, int(size_mib * 1024 * 1024))
    hub.add_repo(
        "demo/Tiny-GGUF",
        {
            "Tiny-Q4_K_M.gguf": gguf_bytes(tensor_bytes=unit, name="Tiny", seed=1),
            "Tiny-Q8_0.gguf": gguf_bytes(tensor_bytes=2 * unit, name="Tiny", seed=2),
            "mmproj-Tiny-F16.gguf": gguf_bytes(tensor_bytes=unit // 4, arch="clip", seed=3),
            "README.md": SimFile("README.md", b"# Tiny demo model\n", lfs=False),
        },
        downloads=120_000,
        likes=42,
        tags=["gguf", "text-generation", "license:apache-2.0"],
    )
    hub.add_repo(
        "demo/Split-GGUF",
        {
            **{
                f"Q4_K_M/Split-Q4_K_M-{i:05d}-of-00003.gguf": gguf_bytes(
                    tensor_bytes=unit, name="Split", seed=10 + i
                )
                for i in (1, 2, 3)
            },
            "Split-Q8_0.gguf": gguf_bytes(tensor_bytes=2 * unit, name="Split", seed=20),
        },
        downloads=8_000,
        likes=7,
        license="mit",
    )
    hub.add_repo(
        "demo/Gated-GGUF",
        {"Gated-Q4_K_M.gguf": gguf_bytes(tensor_bytes=unit, name="Gated", seed=30)},
        gated=True,
        downloads=500,
        likes=3,
        license="llama3.1",
    )
    return hub


def main(argv: list[str] | None = None) -> int:
    """Start the Hub imitation and open the dashboard against it (or only serve it)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.helpers.hubsim_demo",
        description="Try gguf-tui without the internet: start a local imitation of the Hugging Face "
        "Hub with small demo repos and open the dashboard against it, with a store of its own.",
    )
    parser.add_argument("--serve-only", action="store_true",
                        help="only serve the imitation and print how to point gguf-tui at it")
    parser.add_argument("--store", help="store for the dashboard (default: a new temporary folder)")
    parser.add_argument("--port", type=int, default=None,
                        help="API port on 127.0.0.1 (default: 8765 with --serve-only, else any free port)")
    parser.add_argument("--cdn-port", type=int, default=0, help="CDN port on 127.0.0.2 (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="API host")
    parser.add_argument("--cdn-host", default="127.0.0.2", help="CDN host (must differ)")
    parser.add_argument("--size-mib", type=float, default=2.0, help="size unit of demo files")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="token that opens gated repos")
    parser.add_argument("--rate", default=None, type=int,
                        help="CDN throttle in bytes/s (e.g. 200000 to watch progress and try pause)")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else (8765 if args.serve_only else 0)
    hub = demo_hub(
        args.size_mib,
        token=args.token,
        api_host=args.host,
        cdn_host=args.cdn_host,
        api_port=port,
        cdn_port=args.cdn_port,
    )
    hub.cdn_rate = args.rate
    try:
        return asyncio.run(_serve_only(hub) if args.serve_only else _open_dashboard(hub, args.store))
    except KeyboardInterrupt:
        return 130


def _say(text: str) -> None:
    print(f"hubsim: {text}", file=sys.stderr, flush=True)


async def _serve_only(hub: HubSim) -> int:
    async with hub:
        _say(f"Hub imitation serving: API {hub.endpoint}  CDN {hub.cdn_origin}")
        _say("point gguf-tui at it from another shell:")
        print(f"  export HF_ENDPOINT={hub.endpoint}", file=sys.stderr, flush=True)
        print(f"  export HF_TOKEN={hub.token}   # opens demo/Gated-GGUF", file=sys.stderr, flush=True)
        print("  gguf-tui --store /tmp/gguf-demo-store", file=sys.stderr, flush=True)
        _say("repos: " + ", ".join(r.id for r in hub.repos.values()) + "  (ctrl+c stops)")
        await asyncio.Event().wait()
    return 0


async def _open_dashboard(hub: HubSim, store: str | None) -> int:
    store_path = Path(store).expanduser() if store else Path(tempfile.mkdtemp(prefix="gguf-demo-store-"))
    async with hub:
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_TOKEN=hub.token)
        env.pop("GGUF_TUI_STORE", None)
        # --local: the engine lives in the dashboard, so no engine service outlives the demo
        # (its Hub imitation is gone when the demo ends; a service would retry it for nothing).
        argv = [sys.executable, "-m", "gguf_tui", "--store", str(store_path), "--local"]
        _say(f"Hub imitation at {hub.endpoint} (files from {hub.cdn_origin}); "
             f"repos: {', '.join(r.id for r in hub.repos.values())}")
        _say(f"store: {store_path}")
        _say(f"opening the dashboard: HF_ENDPOINT={hub.endpoint} gguf-tui --store {store_path} --local")
        _say("in it: / then 'demo' enter, enter opens a repo, d downloads, q leaves")
        process = await asyncio.create_subprocess_exec(*argv, env=env)
        code = await process.wait()
    _say(f"dashboard closed (exit {code}); the store stays at {store_path}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
