"""The dashboard half of bench_other_stores.py: the real app on a pty over a box of 2,000 GGUF
files, its event-loop lag and RSS while it scans the other stores and while two downloads run.

`dashboard_run` (the parent) starts bench_tui's local file server and the app process;
`run_child` is the app process (`bench_other_stores.py --child`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tui import drain, env_for, parse_size, percentile, serve, spawn_on_pty  # noqa: E402

SAMPLE_EVERY = 0.005
RSS_EVERY = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")


def read_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


# ---- the app process -----------------------------------------------------------------------------


def run_child(args) -> int:
    """The real GgufApp with a loop sampler; phases: scan (cold, then warm), then downloads."""
    import asyncio

    from gguf_tui.config import load_config
    from gguf_tui.engine.api import JobState, PullOptions
    from gguf_tui.tui.app import GgufApp

    config = load_config(args.config)
    lag: dict[str, list[float]] = {"scan": [], "all": [], "downloads": []}
    rss: dict[str, list[int]] = {"scan": [], "all": [], "downloads": []}
    result: dict = {}
    spikes: list[tuple[str, float, int]] = []  # (phase, seconds since start, ms) over 50 ms
    t0 = time.perf_counter()
    gc_pauses: list[tuple[float, int, int]] = []  # (seconds since start, generation, ms) over 20 ms
    gc_started = [0.0]

    def on_gc(stage: str, info: dict) -> None:
        if stage == "start":
            gc_started[0] = time.perf_counter()
        elif (took := time.perf_counter() - gc_started[0]) > 0.02:
            gc_pauses.append((round(gc_started[0] - t0, 2), info["generation"], round(took * 1000)))

    import gc

    gc.callbacks.append(on_gc)
    if os.environ.get("BENCH_GC_THRESHOLD"):
        gc.set_threshold(700, 10, int(os.environ["BENCH_GC_THRESHOLD"]))

    class BenchApp(GgufApp):
        others_scans = 0

        def on_others_scanned(self, message) -> None:
            super().on_others_scanned(message)  # the catalog and status bar are updated here
            BenchApp.others_scans += 1
            if os.environ.get("BENCH_GC_FREEZE"):
                gc.collect(1)
                gc.freeze()

        def on_mount(self) -> None:
            super().on_mount()
            self.run_worker(self.bench(), group="bench")

        async def sample(self, phase: str, done) -> None:
            loop = asyncio.get_running_loop()
            last_rss = 0.0
            while not done():
                before = loop.time()
                await asyncio.sleep(SAMPLE_EVERY)
                lag[phase].append(max(0.0, loop.time() - before - SAMPLE_EVERY))
                if lag[phase][-1] > 0.05:
                    spikes.append((phase, round(time.perf_counter() - t0, 2), round(lag[phase][-1] * 1000)))
                now = time.perf_counter()
                if now - last_rss >= RSS_EVERY:
                    rss[phase].append(read_rss())
                    last_rss = now

        async def bench(self) -> None:
            try:
                await self.phases()
            except Exception:  # noqa: BLE001 - report it with the numbers, then leave
                import traceback

                result["error"] = traceback.format_exc()
            await self.action_quit()

        async def phases(self) -> None:
            started = time.perf_counter()
            while BenchApp.others_scans < 1 or not self._engine_ready:
                await asyncio.sleep(0.01)  # start-up: the engine service, the first scans
            result["startup_to_others_listed_s"] = time.perf_counter() - started
            await asyncio.sleep(0.5)

            import gguf_tui.store.others as others_module

            others_module._facts_cache.clear()  # a cold scan again: every header read anew
            seen = BenchApp.others_scans
            started = time.perf_counter()
            self.action_rescan_all()  # ctrl+r: our store, then the other stores
            await self.sample("scan", lambda: BenchApp.others_scans > seen)
            result["cold_scan_to_catalog_s"] = time.perf_counter() - started
            result["other_models"] = len(self.sources.stores.others.models)
            seen = BenchApp.others_scans
            started = time.perf_counter()
            self.action_rescan_all()  # warm: headers cached per file
            await self.sample("scan", lambda: BenchApp.others_scans > seen)
            result["warm_rescan_to_catalog_s"] = time.perf_counter() - started

            # `s`: every store's models in the catalog (thousands of rows), then a second.
            catalog = self.query_one("#catalog")
            started = time.perf_counter()
            self.action_source_filter()
            result["filter_now"] = self.sources.current
            await self.sample("all", lambda: catalog.row_count == len(catalog.catalog_rows))
            result["all_rows_shown_s"] = time.perf_counter() - started
            result["catalog_rows"] = len(catalog.catalog_rows)
            until = time.perf_counter() + 1.0
            await self.sample("all", lambda: time.perf_counter() > until)

            ids = []
            for name in ("a", "b"):
                ids.append(await self.engine.enqueue(f"{args.url}/{name}.gguf", PullOptions(name=f"bench-{name}")))
            while not any(self.jobs.get(i) and self.jobs[i].bytes_done for i in ids):
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            deadline = started + args.seconds
            finished = lambda: all(self.jobs.get(i) and self.jobs[i].state.is_final for i in ids)  # noqa: E731
            scans_before = BenchApp.others_scans

            async def rescan_every(seconds: float) -> None:
                while not finished() and time.perf_counter() < deadline:
                    self.action_rescan_all()  # ctrl+r: far more often than the app's own rescans
                    await asyncio.sleep(seconds)

            rescans = asyncio.ensure_future(rescan_every(args.rescan_every) if args.rescan_every > 0
                                            else asyncio.sleep(0))
            await self.sample("downloads", lambda: finished() or time.perf_counter() > deadline)
            rescans.cancel()
            views = [self.jobs[i] for i in ids]
            elapsed = time.perf_counter() - started
            result.update(
                download_seconds=elapsed,
                download_bytes=sum(v.total or 0 if v.state == JobState.COMPLETED else v.bytes_done for v in views),
                download_states=[v.state.value + (f": {v.message}" if v.message else "") for v in views],
                rescans_during_downloads=BenchApp.others_scans - scans_before,
            )

    app = BenchApp(config)
    app.run()
    result["lag"] = lag
    result["spikes"] = spikes[:30]
    result["gc_pauses"] = gc_pauses[:30]
    result["rss"] = rss
    Path(args.out).write_text(json.dumps(result))
    return 0


# ---- the parent ----------------------------------------------------------------------------------


def _lag_stats(samples: list[float]) -> dict:
    ms = [s * 1000 for s in samples] or [0.0]
    return {"p50": round(percentile(ms, 0.5), 2), "p99": round(percentile(ms, 0.99), 2),
            "max": round(max(ms), 2), "samples": len(samples)}


def dashboard_run(work: Path, config: Path, args) -> dict:
    """Serve two files, run the app on a pty over the built box, and report per phase."""
    size = parse_size(args.size)
    dash_config = work / "dashboard.yaml"
    dash_config.write_text(config.read_text() + f"engine:\n  mode: {args.engine}\n  idle_exit: 5\n"
                           "downloads:\n  free_space_margin: 64M\n")
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    head = (work / "template.gguf").read_bytes()  # written by build(): a small real GGUF
    server = context.Process(target=serve, args=(send, size, head), daemon=True)
    server.start()
    out = work / "dashboard.json"
    env = env_for(work / "store")
    env.pop("GGUF_TUI_STORE", None)  # the config names the store
    env["XDG_RUNTIME_DIR"] = str(work / "runtime")  # a private engine service, stopped after
    env["XDG_STATE_HOME"] = str(work / "state")
    (work / "runtime").mkdir(mode=0o700, exist_ok=True)
    try:
        url = f"http://127.0.0.1:{receive.recv()}"
        argv = [sys.executable, str(Path(__file__).with_name("bench_other_stores.py")), "--child",
                "--config", str(dash_config), "--url", url, "--out", str(out),
                "--seconds", str(args.seconds), "--rescan-every", str(args.rescan_every)]
        process, master = spawn_on_pty(argv, env)
        seen, _ = drain(master, timeout=args.seconds + 180, process=process)
        process.wait(timeout=30)
        os.close(master)
    finally:
        if args.engine == "service":  # the service the app started: stop it now
            import subprocess

            subprocess.run([sys.executable, "-m", "gguf_tui", "--config", str(dash_config), "engine", "stop"],
                           env=env, capture_output=True, timeout=60)
        server.terminate()
    if not out.exists():
        tail = seen[-3000:].decode(errors="replace")
        raise SystemExit(f"the dashboard run did not finish; its last output:\n{tail}")
    data = json.loads(out.read_text())
    if "error" in data:
        raise SystemExit(f"the dashboard run failed:\n{data['error']}")
    mib = 1 << 20
    report = {
        "engine": args.engine,
        "other_models_listed": data["other_models"],
        "catalog_rows": data["catalog_rows"],
        "startup_to_others_listed_s": round(data["startup_to_others_listed_s"], 2),
        "cold_scan_to_catalog_s": round(data["cold_scan_to_catalog_s"], 2),
        "warm_rescan_to_catalog_s": round(data["warm_rescan_to_catalog_s"], 2),
        "lag_ms_while_scanning": _lag_stats(data["lag"]["scan"]),
        "filter_after_s": data["filter_now"],
        "all_rows_shown_s": round(data["all_rows_shown_s"], 2),
        "lag_ms_showing_all_rows": _lag_stats(data["lag"]["all"]),
        "lag_ms_during_downloads_and_rescans": _lag_stats(data["lag"]["downloads"]),
        "rss_mib_peak_scanning": round(max(data["rss"]["scan"] or [0]) / mib, 1),
        "rss_mib_peak_all_rows": round(max(data["rss"]["all"] or [0]) / mib, 1),
        "rss_mib_peak_downloads": round(max(data["rss"]["downloads"] or [0]) / mib, 1),
        "downloads": {
            "size_each": size,
            "seconds": round(data["download_seconds"], 2),
            "MB_per_s": round(data["download_bytes"] / max(data["download_seconds"], 1e-9) / 1e6, 1),
            "states": data["download_states"],
            "rescans_meanwhile": data["rescans_during_downloads"],
            "rescan_asked_every_s": args.rescan_every,
        },
    }
    report["lag_spikes_over_50ms"] = data["spikes"]
    report["gc_pauses_over_20ms"] = data["gc_pauses"]
    worst_p99 = max(report["lag_ms_while_scanning"]["p99"], report["lag_ms_showing_all_rows"]["p99"],
                    report["lag_ms_during_downloads_and_rescans"]["p99"])
    peak = max(report["rss_mib_peak_scanning"], report["rss_mib_peak_all_rows"],
               report["rss_mib_peak_downloads"])
    report["ok"] = worst_p99 < 50 and peak < 150
    return report
