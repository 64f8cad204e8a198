"""Politeness benchmark: how much a download slows a CPU-bound job, with and without priority.

    .venv/bin/python bench/bench_politeness.py [--size 1G] [--seconds 10] [--runs 3]

A busy loop on every core stands in for inference (llama.cpp with CPU offload is bound by
exactly these cores). Each run counts the loops' iterations for `--seconds`: alone, while the
engine service downloads from a local nginx with `engine.nice: 0, ionice: off`, and while it
downloads with the defaults (`nice: 10`, `ionice: best-effort`). Pulls repeat back to back for
the whole window. Reported: the busy loops' throughput relative to running alone, and the
download's throughput in each case (the price of yielding).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_download import NGINX_CONF, ensure_installed, make_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PORT = 20891


def spin(seconds: float, counts) -> None:
    """Count loop iterations for `seconds` (pure CPU, like a compute-bound inference thread)."""
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        for _ in range(10_000):
            pass
        count += 1
    counts.put(count)


def busy(seconds: float) -> int:
    counts = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=spin, args=(seconds, counts)) for _ in range(os.cpu_count() or 1)]
    for worker in workers:
        worker.start()
    total = sum(counts.get() for _ in workers)
    for worker in workers:
        worker.join()
    return total


def gguf_tui(config: Path, *args: str) -> list[str]:
    program = REPO / ".venv" / "bin" / "gguf-tui"
    base = [str(program)] if program.exists() else [PYTHON, "-m", "gguf_tui"]
    return [*base, "--config", str(config), *args]


def with_downloads(config: Path, store: Path, url: str, size: int, seconds: float) -> tuple[int, float]:
    """Busy-loop count while pulls repeat for `seconds`; and the pulls' MB/s over that time."""
    subprocess.run(gguf_tui(config, "engine", "start"), check=True, capture_output=True)
    result: dict[str, float] = {}

    def pull_loop() -> None:
        done, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(parents=True)
            subprocess.run(gguf_tui(config, "pull", url), capture_output=True)
            done += size
        result["mb_s"] = done / 1e6 / (time.monotonic() - start)

    import threading

    puller = threading.Thread(target=pull_loop)
    puller.start()
    time.sleep(0.5)  # the first pull is under way
    count = busy(seconds)
    puller.join()
    subprocess.run(gguf_tui(config, "engine", "stop"), capture_output=True)
    return count, result["mb_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from gguf_tui.units import parse_size

    size = parse_size(args.size)
    ensure_installed("nginx", "nginx-light")
    work = Path(tempfile.mkdtemp(prefix="gguf-tui-bench-polite-", dir=os.environ.get("BENCH_DIR")))
    work.chmod(0o755)
    root, store = work / "www", work / "store"
    root.mkdir()
    (work / "tmp").mkdir()
    (work / "run").mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(work / "run")
    os.environ["XDG_STATE_HOME"] = str(work / "state")
    make_file(root / "m.gguf", size)
    configs = {}
    for name, engine in (("nice 0, ionice off", "  nice: 0\n  ionice: 'off'\n"), ("defaults (nice 10, best-effort 7)", "")):
        path = work / f"{len(configs)}.yaml"
        path.write_text(f"store: {store}\ndownloads:\n  free_space_margin: 0\nengine:\n  idle_exit: 0\n{engine}")
        configs[name] = path
    (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, root=root, fast=PORT, capped=PORT + 1))
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)])
    try:
        time.sleep(0.5)
        url = f"http://127.0.0.1:{PORT}/m.gguf"
        alone: list[int] = []
        loaded: dict[str, list[tuple[int, float]]] = {name: [] for name in configs}
        for run in range(args.runs):
            alone.append(busy(args.seconds))
            names = list(configs) if run % 2 == 0 else list(reversed(configs))
            for name in names:
                loaded[name].append(with_downloads(configs[name], store, url, size, args.seconds))
            print(f"  run {run + 1}: alone {alone[-1]}, "
                  + ", ".join(f"{n}: {loaded[n][-1][0]} ({loaded[n][-1][1]:.0f} MB/s)" for n in names),
                  file=sys.stderr)
        base = statistics.median(alone)
        print(f"\n== busy loop on {os.cpu_count()} cores with a concurrent download, {args.runs} runs, medians")
        print(f"{'download engine':<36}{'busy loop vs alone':>20}{'download MB/s':>15}")
        for name in configs:
            count = statistics.median(c for c, _ in loaded[name])
            rate = statistics.median(r for _, r in loaded[name])
            print(f"{name:<36}{count / base:>19.3f}x{rate:>15.0f}")
    finally:
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
