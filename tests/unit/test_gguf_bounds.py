"""Crafted headers cannot make the reader allocate gigabytes or run for minutes (issue 10.4).

Every check reads real sparse files in a child process and measures that child alone (its
peak resident memory, VmHWM), so the bounds are the real program's, not this test process's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gguf_tui.gguf import GGUFError, GGUFTruncated, parse_gguf_bytes
from gguf_tui.gguf.reader import MAX_HEADER_BYTES, METADATA_KEEP_BYTES
from gguf_tui.hub import read_remote_gguf
from gguf_tui.store.fileio import cached_header, read_header
from tests.conftest import REPO_ROOT, cli_subprocess_env
from tests.helpers import crafted_gguf
from tests.helpers.ggufgen import QWEN_VOCAB_SIZE, make_vocab_gguf

# Generous margins over what the bounded reader needs (~30 MB and well under a second a file)
# and far below what the unbounded one took (3.4 GB, 24 to 92 s). Time is the child's CPU time,
# which a busy machine does not inflate as it does wall time; a hang still fails by timeout.
MAX_CHILD_RSS_MB = 200
MAX_CPU_SECONDS_PER_FILE = 5


def run_measured(
    args: list[str], env: dict[str, str], timeout: float
) -> tuple[int, float, float, str]:
    """Run a child; return its exit status, peak RSS in MB, CPU seconds and its stdout."""
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"{args[-2:]} ran past {timeout} s")
    match = re.search(rb"PEAK_RSS_KB=(\d+) CPU_S=([0-9.]+)", out)
    assert match, out[-2000:]
    rss_mb, cpu_seconds = int(match.group(1)) / 1024, float(match.group(2))
    return child.returncode, rss_mb, cpu_seconds, out.decode(errors="replace")


# The child runs the real CLI (or the reader), then prints its own peak RSS. VmHWM is the peak
# of this program's memory alone; ru_maxrss would also count the pytest process it forked from.
_CHILD = """
import resource, sys
# A ceiling far above the bound, so an unbounded reader fails here instead of taking the box.
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
sys.argv = ["gguf-tui", *sys.argv[1:]]
code = 0
try:
    if sys.argv[1] == "--read":
        from gguf_tui.gguf import GGUFError
        from gguf_tui.store.fileio import read_header
        try:
            read_header(sys.argv[2])
            print("READ OK")
        except GGUFError as error:
            print("READ ERROR", error)
    else:
        from gguf_tui.cli import main
        code = main(sys.argv[1:])
finally:
    sys.stdout.flush()
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"PEAK_RSS_KB={peak} CPU_S={usage.ru_utime + usage.ru_stime:.3f}", flush=True)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real file with a Qwen-size (151,936-token) vocabulary."""
    return make_vocab_gguf(tmp_path_factory.mktemp("vocab") / "Real-Vocab-Q4_K_M.gguf")


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crafted")
    return {kind: make(folder / f"crafted-{kind}.gguf") for kind, make in crafted_gguf.ALL.items()}


def test_crafted_files_are_sparse(crafted: dict[str, Path]) -> None:
    # The attack only works if the files are cheap: most are gigabytes that take no disk.
    long_strings = crafted["long-strings"].stat()
    assert long_strings.st_size > 2 << 30
    assert long_strings.st_blocks * 512 < 16 << 20


@pytest.mark.parametrize("kind", list(crafted_gguf.ALL))
def test_reader_bounds_memory_and_time(crafted: dict[str, Path], kind: str) -> None:
    code, rss_mb, cpu_seconds, out = run_measured(
        [sys.executable, "-c", _CHILD, "--read", str(crafted[kind])],
        cli_subprocess_env(REPO_ROOT / "missing-config.yaml"),
        timeout=60,
    )
    assert code == 0, out
    assert ("READ OK" if kind in crafted_gguf.VALID else "READ ERROR") in out, out
    assert rss_mb < MAX_CHILD_RSS_MB, f"{kind}: peak RSS {rss_mb:.0f} MB"
    assert cpu_seconds < MAX_CPU_SECONDS_PER_FILE, f"{kind}: {cpu_seconds:.1f} s of CPU"


def test_ls_over_a_store_of_crafted_files(
    crafted: dict[str, Path], vocab_path: Path, store: Path, config_file: Path
) -> None:
    store.mkdir(parents=True)
    for kind, path in crafted.items():
        os.link(path, store / path.name)  # the same sparse inode, no copy
    os.link(vocab_path, store / vocab_path.name)
    code, rss_mb, cpu_seconds, out = run_measured(
        [sys.executable, "-c", _CHILD, "ls", "--json"],
        cli_subprocess_env(config_file),
        timeout=120,
    )
    assert code == 0, out
    assert rss_mb < MAX_CHILD_RSS_MB, f"peak RSS {rss_mb:.0f} MB"
    assert cpu_seconds < MAX_CPU_SECONDS_PER_FILE * len(crafted), f"{cpu_seconds:.1f} s of CPU"
    listing = json.loads(out[: out.rindex("PEAK_RSS_KB=")])
    models = {model["name"]: model for model in listing["models"]}
    real = models["Real-Vocab-Q4_K_M"]
    assert (real["architecture"], real["quant"], real["error"]) == ("llama", "Q4_K_M", None)
    for kind in crafted_gguf.ALL:
        model = models[f"crafted-{kind}"]
        assert model["state"] == "unmanaged"
        assert bool(model["error"]) is (kind not in crafted_gguf.VALID), kind


# --- what the limits are, in-process ---------------------------------------------------------


def test_long_strings_stop_at_the_header_budget(crafted: dict[str, Path]) -> None:
    with pytest.raises(GGUFError, match="header") as caught:
        read_header(crafted["long-strings"])
    assert f"{MAX_HEADER_BYTES >> 20} MiB" in str(caught.value)


def test_counts_that_cannot_be_real_fail_at_once(crafted: dict[str, Path]) -> None:
    with pytest.raises(GGUFError, match="KV count 1000000 at offset 16 is absurd"):
        read_header(crafted["many-keys"])
    with pytest.raises(GGUFError, match="tensor count 10000000 at offset 8 is absurd"):
        read_header(crafted["tensor-infos"])


def test_kept_metadata_is_bounded(crafted: dict[str, Path]) -> None:
    info = read_header(crafted["many-strings"])
    assert info.kv_count == 4000
    kept_text = sum(len(value) for value in info.metadata.values() if isinstance(value, str))
    assert kept_text <= METADATA_KEEP_BYTES
    assert len(info.metadata) < info.kv_count


def test_string_items_across_arrays_are_bounded(tmp_path: Path) -> None:
    # Each array alone is allowed; together they would walk tens of millions of strings.
    path = crafted_gguf.string_arrays(tmp_path / "arrays.gguf", count=8, length=1 << 21)
    with pytest.raises(GGUFError, match="strings"):
        read_header(path)


def test_large_real_vocabulary_still_reads(vocab_path: Path) -> None:
    info = read_header(vocab_path)
    assert info.metadata["tokenizer.ggml.tokens"] == f"<array of {QWEN_VOCAB_SIZE} str>"
    assert info.name == "Tiny-Vocab"
    assert info.min_file_size == vocab_path.stat().st_size


def test_prefix_parser_never_asks_past_the_budget(crafted: dict[str, Path]) -> None:
    """The remote reader grows its prefix by `needed`; that never passes the header budget."""
    path = crafted["long-strings"]
    size = path.stat().st_size
    have = 4096
    with open(path, "rb") as handle:
        for _ in range(100):
            handle.seek(0)
            data = handle.read(have)
            try:
                parse_gguf_bytes(data, total_size=size)
            except GGUFTruncated as short:
                assert short.needed <= MAX_HEADER_BYTES
                have = max(short.needed, 2 * have)
                continue
            except GGUFError as error:
                assert "header" in str(error)
                break
        else:
            pytest.fail("no verdict")
    assert have <= MAX_HEADER_BYTES


# --- the remote reader against a real server serving the sparse files ------------------------


def _range_server(folder: Path, served: list[int]) -> web.Application:
    """Serves byte ranges of the files in `folder` straight from disk (sparse files stay cheap)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        path = folder / request.match_info["name"]
        size = path.stat().st_size
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", ""))
        assert match, "the remote reader always asks for a range"
        start, end = int(match.group(1)), min(int(match.group(2)), size - 1)
        served.append(end - start + 1)
        response = web.StreamResponse(
            status=206, headers={"Content-Range": f"bytes {start}-{end}/{size}"}
        )
        response.content_length = end - start + 1
        await response.prepare(request)
        fd = os.open(path, os.O_RDONLY)
        try:
            position = start
            while position <= end:
                block = os.pread(fd, min(1 << 20, end + 1 - position), position)
                await response.write(block)
                position += len(block)
        finally:
            os.close(fd)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{name}", handle)
    return app


REMOTE_CASES = {
    **{kind: crafted_gguf.ALL[kind] for kind in ("long-strings", "u64-arrays", "string-arrays")},
    # Strings that make the prefix grow in steps: doubling must not overshoot the budget.
    "20-mib-strings": lambda path: crafted_gguf.long_strings(path, count=5, length=20 << 20),
}


@pytest.mark.parametrize("kind", list(REMOTE_CASES))
async def test_remote_reader_gets_the_same_bounds(tmp_path: Path, kind: str) -> None:
    path = REMOTE_CASES[kind](tmp_path / f"{kind}.gguf")
    served: list[int] = []
    runner = web.AppRunner(_range_server(tmp_path, served))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(GGUFError, match="64 MiB|strings in all|larger than"):
                await read_remote_gguf(f"http://127.0.0.1:{port}/{path.name}", session)
    finally:
        await runner.cleanup()
    assert served and sum(served) <= MAX_HEADER_BYTES


def test_header_budget_is_generous_for_real_vocabularies() -> None:
    # 262k tokens of ~10 bytes, their scores and types, and 300k merges: ~10 MB of header.
    assert MAX_HEADER_BYTES >= 32 << 20


def test_header_cache_is_bounded_in_bytes(tmp_path: Path) -> None:
    # 1,000 files each keeping ~48 KiB of metadata: 48 MB if the cache held them all.
    paths = [
        crafted_gguf.many_strings(tmp_path / f"s{index}.gguf", count=5, length=16 << 10)
        for index in range(1000)
    ]
    tracemalloc.start()
    try:
        for path in paths:
            assert not isinstance(cached_header(path), GGUFError)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 40 << 20, f"{held >> 20} MB held"
    assert not isinstance(cached_header(paths[-1]), GGUFError)  # the newest are still cached
