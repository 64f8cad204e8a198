"""Download benchmark: gguf-tui pull against curl, aria2c and huggingface_hub, in one run.

    .venv/bin/python bench/bench_download.py [--size 2G] [--runs 3] [--connections N] [--quick]

Starts a local nginx (installing the Debian package if missing) on a port above 20000 with two
server blocks: one unlimited, one with `limit_rate 25m` per connection. Writes a GGUF-sized file,
then runs every tool in alternation (so machine noise hits all of them alike) on both servers,
and prints median wall time, MB/s, CPU seconds per GB and peak RSS, plus wall-time ratios of
gguf-tui against the others. Then a scaling run of gguf-tui with 1, 2, 4, 8 and 16 connections
on the capped server.

CPU is measured from outside every tool the same way: the user + system time of the whole
process tree, as `wait4` reports it for the bench's child (which includes every descendant it
waited for), per 1e9 bytes. gguf-tui runs twice: `pull --local` (the download in the pull
process itself) and `pull` through the engine service, which is what a user runs by default;
there the bench starts `gguf-tui engine run` as its own child before the pull and stops it
afterwards, so the service's CPU (start-up included) is read from its `wait4` and added to the
pull client's. The line below it leaves out the service's start-up (its CPU when it first
answered, from /proc): the cost of a pull when the service is already running.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FAST_PORT = 20871
CAPPED_PORT = 20872
TLS_PORT = 20873

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    server {{ listen 127.0.0.1:{fast}; root {root}; }}
    server {{ listen 127.0.0.1:{capped}; root {root}; limit_rate 25m; }}
    server {{
        listen 127.0.0.1:{tls} ssl;
        server_name localhost;
        root {root};
        ssl_certificate {work}/tls.crt;
        ssl_certificate_key {work}/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
    }}
}}
"""

HF_SCRIPT = """
import sys
from huggingface_hub.file_download import http_get
with open(sys.argv[2], "wb") as out:
    http_get(sys.argv[1], out)
"""


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_kib: int
    user: float = 0.0
    startup: float = 0.0  # the service's CPU seconds before the pull began (its start-up)


@dataclass
class Tool:
    name: str
    argv: list[str]
    output: Path
    samples: list[Sample] = field(default_factory=list)
    service: list[str] | None = None  # `engine run` to start around the measured command
    service_env: dict[str, str] | None = None
    service_socket: Path | None = None


def ensure_installed(binary: str, package: str) -> None:
    if shutil.which(binary):
        return
    print(f"installing {package} ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)


def ensure_python_package(module: str, package: str) -> None:
    try:
        __import__(module)
    except ImportError:
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", package], check=True)


def make_certificate(work: Path) -> Path:
    """A self-signed certificate for localhost (the openssl CLI: no Python dependency for the
    bench); every tool trusts it as its only CA, as a user's tools trust the CDN's."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(work / "tls.key"), "-out", str(work / "tls.crt")],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return work / "tls.crt"


def make_file(path: Path, size: int) -> str:
    """A GGUF-sized file: a real GGUF header, then pseudo-random bytes (not compressible)."""
    digest = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    with open(path, "wb") as out:
        header = b"GGUF" + (3).to_bytes(4, "little") + bytes(16)
        out.write(header)
        digest.update(header)
        written = len(header)
        counter = 0
        while written < size:
            counter += 1
            chunk = counter.to_bytes(8, "little") + block[8 : min(len(block), size - written)]
            chunk = chunk[: size - written]
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def load_average() -> str:
    """The 1-minute load average, printed beside each result (the machine may be shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def wait_measured(process: subprocess.Popen, what: str) -> tuple[float, int, float]:
    """Reap `process`; its whole tree's user + system seconds, peak RSS (KiB) and user seconds,
    from wait4."""
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed ({process.returncode}): {stderr[-500:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss, usage.ru_utime


def process_cpu(pid: int) -> float:
    """User + system seconds of a live process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_service(tool: Tool) -> subprocess.Popen:
    """`gguf-tui engine run` as the bench's child; returns once its socket answers."""
    assert tool.service and tool.service_socket
    tool.service_socket.unlink(missing_ok=True)
    service = subprocess.Popen(
        tool.service, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=tool.service_env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if service.poll() is not None:
            break
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(tool.service_socket))
                return service
            except OSError:
                time.sleep(0.05)
    service.kill()
    wait_measured(service, "gguf-tui engine run")
    raise RuntimeError("the engine service did not start")


def run_measured(tool: Tool) -> Sample:
    # Flush the previous tool's dirty pages first, so no tool pays for another's writeback.
    os.sync()
    time.sleep(0.3)
    service = start_service(tool) if tool.service else None
    startup = process_cpu(service.pid) if service is not None else 0.0
    try:
        start = time.perf_counter()
        process = subprocess.Popen(
            tool.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=tool.service_env
        )
        cpu, rss, user = wait_measured(process, tool.argv[0])
        wall = time.perf_counter() - start
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)  # what `engine stop` does: pause, save, exit
    if service is not None:
        service_cpu, service_rss, service_user = wait_measured(service, "gguf-tui engine run")
        cpu += service_cpu
        user += service_user
        rss = max(rss, service_rss)
    return Sample(wall, cpu, rss, user, startup)


def drop_output(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    for extra in path.parent.glob(path.name + ".aria2"):
        extra.unlink()


def tools_for(
    url: str, sha: str, work: Path, connections: int | None, extra: bool = False,
    ca_file: Path | None = None,
) -> list[Tool]:
    store = work / "store"
    config = work / "bench-config.yaml"
    # The same CPU and I/O priority as the other tools: on a shared machine a niced engine
    # would lose wall time to the neighbours that curl and aria2c do not lose.
    config.write_text(
        "downloads:\n  free_space_margin: 0\nengine:\n  nice: 0\n  ionice: 'off'\n"
    )
    gguf_tui = [PYTHON, "-m", "gguf_tui", "--config", str(config), "--store", str(store)]
    pull = ["pull", url, "--sha256", sha]
    if connections:
        pull += ["--connections", str(connections)]
    runtime = work / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), XDG_STATE_HOME=str(work / "state"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    curl = ["curl", "-s"]
    if ca_file is not None:
        # gguf-tui (aiohttp) verifies with Python's default SSL context, which reads
        # SSL_CERT_FILE as OpenSSL's default CA file.
        env["SSL_CERT_FILE"] = str(ca_file)
        curl += ["--cacert", str(ca_file)]
    from gguf_tui.service.paths import service_paths

    out = work / "out.bin"
    aria = ["aria2c", "-q", "--file-allocation=none", "-d", str(work), "-o", "aria.bin",
            "--allow-overwrite=true"]
    if ca_file is not None:
        aria.append(f"--ca-certificate={ca_file}")
    tools = [
        Tool("gguf-tui pull --local", gguf_tui + ["--local"] + pull, store, service_env=env),
        Tool(
            "gguf-tui pull + service", gguf_tui + pull, store,
            service=gguf_tui + ["engine", "run"], service_env=env,
            service_socket=service_paths(store, env).socket,
        ),
        Tool("curl -o FILE", curl + ["-o", str(out), url], out),
        # gguf-tui fsyncs a file before placing it (DESIGN §5); this is curl with the same
        # durability, to show what that rule costs on the machine at hand.
        Tool(
            "curl -o FILE && sync FILE",
            ["sh", "-c", 'out=$1 url=$2; shift 2; "$@" -o "$out" "$url" && sync "$out"',
             "sh", str(out), url] + curl,
            out,
        ),
        Tool("aria2c -x1", aria + ["-x1", "-s1", url], work / "aria.bin"),
        Tool("aria2c -x8 -s8", aria + ["-x8", "-s8", url], work / "aria.bin"),
    ]
    if extra:
        tools += [
            Tool(
                "aria2c -x8 -s8 --checksum",
                aria + ["-x8", "-s8", f"--checksum=sha-256={sha}", url],
                work / "aria.bin",
            ),
            Tool("huggingface_hub http_get", [PYTHON, "-c", HF_SCRIPT, url, str(out)], out),
        ]
    return tools


def report(title: str, tools: list[Tool], size: int, loads: list[str]) -> dict[str, float]:
    gb = size / 1e9
    runs = len(tools[0].samples)
    print(f"\n== {title} ({size / 2**30:.2f} GiB, {runs} runs each, medians; "
          f"1-min load average before each run: {' '.join(loads)})")
    print(f"{'tool':<28}{'wall s':>9}{'MB/s':>9}{'CPU-s/GB':>10}{'  (min-max)':<14}"
          f"{'user/GB':>8}{'peak RSS MiB':>13}")
    medians = {}
    cpu_medians = {}
    for tool in tools:
        wall = statistics.median(s.wall for s in tool.samples)
        cpus = [s.cpu / gb for s in tool.samples]
        rss = max(s.rss_kib for s in tool.samples) / 1024
        medians[tool.name] = wall
        cpu_medians[tool.name] = statistics.median(cpus)
        spread = f"  ({min(cpus):.2f}-{max(cpus):.2f})"
        user = statistics.median(s.user for s in tool.samples) / gb
        print(f"{tool.name:<28}{wall:>9.2f}{size / wall / 1e6:>9.0f}"
              f"{statistics.median(cpus):>10.2f}{spread:<14}{user:>8.2f}{rss:>13.1f}")
        if tool.service:
            # The same runs without the service's start-up: a service that is already running,
            # as it is for every pull after the first.
            warm = [(s.cpu - s.startup) / gb for s in tool.samples]
            label = "  ... service already up"
            print(f"{label:<46}{statistics.median(warm):>10.2f}"
                  f"  ({min(warm):.2f}-{max(warm):.2f})   start-up "
                  f"{statistics.median(s.startup for s in tool.samples):.2f} CPU-s")
    for ours in (t.name for t in tools if t.name.startswith("gguf-tui")):
        for reference in (
            "curl -o FILE && sync FILE",
            "curl -o FILE",
            "aria2c -x1",
            "aria2c -x8 -s8",
            "aria2c -x8 -s8 --checksum",
            "huggingface_hub http_get",
        ):
            if reference in medians:
                label = f"{ours} / {reference} wall time:"
                print(f"ratio {label:<72}{medians[ours] / medians[reference]:.2f}x")
        if "curl -o FILE" in cpu_medians:
            # The kernel's share of a download (socket and page-cache copies, loopback TCP)
            # moves with the machine's load; what a tool adds on top of curl moves less.
            above = cpu_medians[ours] - cpu_medians["curl -o FILE"]
            label = f"{ours} CPU above curl -o FILE:"
            print(f"{label:<78}{above:+.2f} CPU-s/GB")
    return medians


def bench_server(title: str, url: str, sha: str, work: Path, runs: int, size: int,
                 connections: int | None, skip: set[str], extra: bool, only: set[str],
                 ca_file: Path | None = None) -> None:
    tools = [
        t for t in tools_for(url, sha, work, connections, extra, ca_file) if t.name not in skip
    ]
    if only:
        tools = [t for t in tools if any(word in t.name for word in only)]
    loads = []
    for run in range(runs):
        loads.append(load_average())
        # Rotate the order each run, so that no tool always follows the same neighbour (the one
        # before leaves the page cache and free memory in its own state).
        shift = run % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            drop_output(tool.output)
            tool.samples.append(run_measured(tool))
            drop_output(tool.output)
        print(f"  {title}: run {run + 1}/{runs} done", file=sys.stderr)
    report(title, tools, size, loads)


def bench_scaling(url: str, sha: str, work: Path, size: int, runs: int) -> None:
    print(f"\n== scaling on the capped server (25 MB/s per connection), medians of {runs}")
    print(f"{'connections':<14}{'wall s':>9}{'MB/s':>9}{'CPU-s/GB':>10}{'peak RSS MiB':>14}")
    for connections in (1, 2, 4, 8, 16):
        tool = tools_for(url, sha, work, connections)[0]
        for _ in range(runs):
            drop_output(tool.output)
            tool.samples.append(run_measured(tool))
            drop_output(tool.output)
        wall = statistics.median(s.wall for s in tool.samples)
        cpu = statistics.median(s.cpu for s in tool.samples)
        rss = max(s.rss_kib for s in tool.samples) / 1024
        print(f"{connections:<14}{wall:>9.2f}{size / wall / 1e6:>9.0f}{cpu / (size / 1e9):>10.2f}{rss:>14.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G or 512M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--capped-size", default="1G",
                        help="file size on the capped server (25 MB/s: curl needs 43 s per GiB)")
    parser.add_argument("--connections", type=int, default=None,
                        help="gguf-tui connections on both servers (default: its config)")
    parser.add_argument("--quick", action="store_true", help="256M file, 1 run, no capped runs")
    parser.add_argument("--uncapped-only", action="store_true",
                        help="only the uncapped comparison (skips about 12 minutes of capped runs)")
    parser.add_argument("--extra-tools", action="store_true",
                        help="also aria2c -x8 --checksum and huggingface_hub's http_get")
    parser.add_argument("--tls", action="store_true",
                        help="also the uncapped comparison over HTTPS (the same nginx, a "
                        "self-signed certificate every tool trusts)")
    parser.add_argument("--tls-only", action="store_true",
                        help="only the comparison over HTTPS")
    parser.add_argument("--only", action="append", default=[], metavar="WORD",
                        help="only the tools whose name holds WORD (repeatable), e.g. --only "
                        "gguf-tui --only sync")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from gguf_tui.units import parse_size

    size = parse_size("256M" if args.quick else args.size)
    scaling_size = parse_size(args.capped_size)
    runs = 1 if args.quick else args.runs
    ensure_installed("nginx", "nginx-light")
    ensure_installed("curl", "curl")
    ensure_installed("aria2c", "aria2")
    if args.extra_tools:
        ensure_python_package("huggingface_hub", "huggingface_hub")

    # An installed package has its bytecode compiled; a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile gguf_tui at every start and count it as download CPU.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "gguf_tui")], check=True)
    work = Path(tempfile.mkdtemp(prefix="gguf-tui-bench-", dir=os.environ.get("BENCH_DIR")))
    work.chmod(0o755)
    root = work / "www"
    root.mkdir()
    (work / "tmp").mkdir()
    print(f"writing a {size / 2**30:.2f} GiB test file ...", file=sys.stderr)
    sha = make_file(root / "model.gguf", size)
    capped_runs = not (args.quick or args.uncapped_only or args.tls_only)
    scaling_sha = make_file(root / "scaling.gguf", scaling_size) if capped_runs else ""
    ca_file = make_certificate(work)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(
        work=work, root=root, fast=FAST_PORT, capped=CAPPED_PORT, tls=TLS_PORT
    ))
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)])
    try:
        time.sleep(0.5)
        if nginx.poll() is not None:
            print("nginx did not start; see", work / "error.log", file=sys.stderr)
            return 1
        connections = f"gguf-tui --connections {args.connections or 'default'}"
        if not args.tls_only:
            fast = f"http://127.0.0.1:{FAST_PORT}/model.gguf"
            bench_server(f"uncapped server, {connections}", fast, sha, work, runs, size,
                         args.connections, set(), args.extra_tools, set(args.only))
        if args.tls or args.tls_only:
            # The Hugging Face CDN answers over HTTPS: this is the download users run.
            secure = f"https://localhost:{TLS_PORT}/model.gguf"
            bench_server(f"uncapped server over HTTPS (TLS), {connections}", secure, sha, work,
                         runs, size, args.connections, set(), args.extra_tools,
                         set(args.only), ca_file)
        if capped_runs and not args.tls_only:
            # 25 MB/s per connection: single-stream tools need 86 s per run on 2 GiB, so the
            # capped comparison and the scaling run use a smaller file (--capped-size).
            capped = f"http://127.0.0.1:{CAPPED_PORT}/scaling.gguf"
            bench_server(
                "capped server, 25 MB/s per connection",
                capped, scaling_sha, work, max(1, runs - 1), scaling_size,
                args.connections or 8, {"curl -o FILE && sync FILE"}, args.extra_tools,
                set(args.only),
            )
            bench_scaling(capped, scaling_sha, work, scaling_size, max(1, runs - 1))
    finally:
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
