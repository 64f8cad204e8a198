"""`python -m tests.helpers.hubsim`: the Hub imitation with demo repos, for trying the CLI and
the TUI by hand (`HF_ENDPOINT=... gguf-tui`)."""

from __future__ import annotations

import argparse
import asyncio
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
    parser = argparse.ArgumentParser(
        prog="python -m tests.helpers.hubsim", description="Serve a local imitation of the Hub."
    )
    parser.add_argument("--port", type=int, default=8765, help="API port on 127.0.0.1")
    parser.add_argument("--cdn-port", type=int, default=0, help="CDN port on 127.0.0.2 (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="API host")
    parser.add_argument("--cdn-host", default="127.0.0.2", help="CDN host (must differ)")
    parser.add_argument("--size-mib", type=float, default=2.0, help="size unit of demo files")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="token that opens gated repos")
    parser.add_argument("--rate", default=None, type=int, help="CDN throttle, bytes/s")
    args = parser.parse_args(argv)
    hub = demo_hub(
        args.size_mib,
        token=args.token,
        api_host=args.host,
        cdn_host=args.cdn_host,
        api_port=args.port,
        cdn_port=args.cdn_port,
    )
    hub.cdn_rate = args.rate

    async def serve() -> None:
        async with hub:
            print(f"hubsim: API {hub.endpoint}  CDN {hub.cdn_origin}", flush=True)
            print(f"  export HF_ENDPOINT={hub.endpoint}", flush=True)
            print(f"  export HF_TOKEN={hub.token}   # opens demo/Gated-GGUF", flush=True)
            print("  repos: " + ", ".join(r.id for r in hub.repos.values()), flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0
