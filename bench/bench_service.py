"""Engine service benchmark: downloads through the service against `--local`, in one run.

    .venv/bin/python bench/bench_service.py [--size 2G] [--runs 3] [--quick]

Issue 12 asks that the service cost nothing a user can see. On a local nginx (installed if
missing, as bench_download.py does) this measures, alternating the two modes every run:

- one file of `--size` and four files at once, pulled with `gguf-tui --local pull` and with
  `gguf-tui pull` through a running service that has three other clients attached (each a
  process that subscribes and reads every event, as a dashboard does). Wall time, and CPU as
  user + system seconds per 1e9 bytes: for --local the pull process; for the service the pull
  client plus the service process over the same interval (read from /proc). The watchers' own
  CPU is shown apart.
- start to first byte: from launching `pull` until its partial file appears in the store (the
  first response has arrived and the engine opened the partial), for both modes;
- the idle service: resident memory and CPU seconds per minute with nothing to do.
"""

from __future__ import annotations

import argparse
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
PORT = 20881
CLK_TCK = os.sysconf("SC_CLK_TCK")

WATCHER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from gguf_tui.config import load_config
from gguf_tui.service.attach import open_engine

async def main():
    engine = await open_engine(load_config(sys.argv[2]))
    subscription = await engine.subscribe()
    print("attached", flush=True)
    async for _event in subscription:
        pass

asyncio.run(main())
"""


def gguf_tui(config: Path, *args: str) -> list[str]:
    program = REPO / ".venv" / "bin" / "gguf-tui"
    base = [str(program)] if program.exists() else [PYTHON, "-m", "gguf_tui"]
    return [*base, "--config", str(config), *args]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def service_pid(config: Path) -> int:
    out = subprocess.run(gguf_tui(config, "engine", "status", "--json"), capture_output=True, text=True)
    import json

    status = json.loads(out.stdout)
    if not status.get("running"):
        raise RuntimeError(f"no engine service is running: {out.stdout} {out.stderr}")
    return int(status["pid"])


def clean_store(store: Path) -> None:
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)


def pull(config: Path, urls: list[str], local: bool, store: Path, service: int | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the pull plus the service) for one `pull` of `urls`."""
    clean_store(store)
    os.sync()
    time.sleep(0.3)
    args = (["--local"] if local else []) + ["pull", *urls]
    service_before = process_cpu(service) if service else 0.0
    start = time.perf_counter()
    process = subprocess.Popen(gguf_tui(config, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"pull failed: {process.stderr.read().decode(errors='replace')[-400:]}")
    cpu = usage.ru_utime + usage.ru_stime
    if service:
        cpu += process_cpu(service) - service_before
    return wall, cpu


def first_byte(config: Path, url: str, local: bool, store: Path) -> float:
    """Seconds from launching `pull` until its partial file exists (then the pull is stopped)."""
    clean_store(store)
    partials = store / ".gguf-tui" / "partials"
    args = (["--local"] if local else []) + ["pull", url]
    start = time.perf_counter()
    process = subprocess.Popen(gguf_tui(config, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if partials.is_dir() and any(p.suffix == ".part" for p in partials.iterdir()):
                return time.perf_counter() - start
            if process.poll() is not None or time.perf_counter() - start > 60:
                raise RuntimeError("the pull ended or stalled before its first byte")
            time.sleep(0.002)
    finally:
        process.send_signal(2)  # Ctrl-C: pauses this pull's job
        process.wait(30)
        if not local:
            subprocess.run(gguf_tui(config, "cancel", "--all"), capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="size of the one-file case (four files: a quarter each)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="256M, 1 run")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds to watch the idle service")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from gguf_tui.units import parse_size

    size = parse_size("256M" if args.quick else args.size)
    runs = 1 if args.quick else args.runs
    ensure_installed("nginx", "nginx-light")
    work = Path(tempfile.mkdtemp(prefix="gguf-tui-bench-svc-", dir=os.environ.get("BENCH_DIR")))
    work.chmod(0o755)
    root, store = work / "www", work / "store"
    root.mkdir()
    (work / "tmp").mkdir()
    runtime = work / "run"
    runtime.mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # a private service for this bench only
    os.environ["XDG_STATE_HOME"] = str(work / "state")
    config = work / "bench.yaml"
    config.write_text(
        f"store: {store}\ndownloads:\n  free_space_margin: 0\n  concurrency: 4\n"
        "engine:\n  idle_exit: 0\n"
    )
    print(f"writing test files ({size / 2**30:.2f} GiB + 4 x {size / 4 / 2**30:.2f} GiB) ...", file=sys.stderr)
    make_file(root / "one.gguf", size)
    for index in range(4):
        make_file(root / f"q{index}.gguf", size // 4)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, root=root, fast=PORT, capped=PORT + 1))
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)])
    watchers: list[subprocess.Popen] = []
    try:
        time.sleep(0.5)
        base = f"http://127.0.0.1:{PORT}"
        one = [f"{base}/one.gguf"]
        four = [f"{base}/q{index}.gguf" for index in range(4)]
        clean_store(store)
        started = subprocess.run(gguf_tui(config, "engine", "start"), capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"engine start failed: {started.stderr.strip()}")
        service = service_pid(config)
        for _ in range(3):
            watcher = subprocess.Popen(
                [PYTHON, "-c", WATCHER, str(REPO), str(config)], stdout=subprocess.PIPE, text=True
            )
            watcher.stdout.readline()  # "attached"
            watchers.append(watcher)
        watchers_before = sum(process_cpu(w.pid) for w in watchers)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for run in range(runs):
            order = ("local", "service") if run % 2 == 0 else ("service", "local")
            for case, urls, total in (("one file", one, size), ("four files", four, 4 * (size // 4))):
                for mode in order:
                    local = mode == "local"
                    sample = pull(config, urls, local, store, None if local else service)
                    results.setdefault((case, mode), []).append(sample)
                    print(f"  run {run + 1} {case:<10} {mode:<8} {sample[0]:6.2f} s  "
                          f"{sample[1] / (total / 1e9):5.2f} CPU-s/GB", file=sys.stderr)
        watchers_cpu = sum(process_cpu(w.pid) for w in watchers) - watchers_before
        firsts: dict[str, list[float]] = {"local": [], "service": []}
        for run in range(max(3, runs)):
            for mode in ("local", "service") if run % 2 == 0 else ("service", "local"):
                firsts[mode].append(first_byte(config, one[0], mode == "local", store))
        for watcher in watchers:
            watcher.terminate()
            watcher.wait(10)
        watchers.clear()
        clean_store(store)
        time.sleep(2.0)
        idle_cpu_before, idle_start = process_cpu(service), time.monotonic()
        time.sleep(args.idle)
        idle_cpu = (process_cpu(service) - idle_cpu_before) * 60.0 / (time.monotonic() - idle_start)
        idle_rss = process_rss_mib(service)
        subprocess.run(gguf_tui(config, "engine", "stop"), capture_output=True)

        print(f"\n== downloads: service (3 other clients attached) vs --local, {runs} runs, medians")
        print(f"{'case':<12}{'mode':<10}{'wall s':>9}{'CPU-s/GB':>10}")
        for case, total in (("one file", size), ("four files", 4 * (size // 4))):
            medians = {}
            for mode in ("local", "service"):
                walls = [wall for wall, _ in results[(case, mode)]]
                cpus = [cpu / (total / 1e9) for _, cpu in results[(case, mode)]]
                medians[mode] = (statistics.median(walls), statistics.median(cpus))
                print(f"{case:<12}{mode:<10}{medians[mode][0]:>9.2f}{medians[mode][1]:>10.2f}")
            print(f"{'':<12}{'ratio':<10}{medians['service'][0] / medians['local'][0]:>8.3f}x"
                  f"{medians['service'][1] / medians['local'][1]:>9.3f}x   (goal: <= 1.05)")
        print(f"three watching clients together: {watchers_cpu:.2f} CPU-s over all the service runs")
        print("\n== start to first byte (partial file created), medians")
        for mode in ("local", "service"):
            print(f"{mode:<10}{statistics.median(firsts[mode]) * 1000:8.0f} ms")
        ratio = statistics.median(firsts["service"]) / statistics.median(firsts["local"])
        print(f"ratio     {ratio:8.3f}x   (goal: no slower than --local)")
        print(f"\n== idle service: {idle_rss:.1f} MiB resident, {idle_cpu:.3f} CPU-s per minute "
              f"(goal: < 60 MiB, ~0)")
    finally:
        for watcher in watchers:
            watcher.kill()
        subprocess.run(gguf_tui(config, "engine", "stop"), capture_output=True)
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
