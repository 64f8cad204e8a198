"""One file over several connections: ranges, work stealing, faults, resume (issue: speed)."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine.resume import ResumeState, missing_ranges
from tests.conftest import sha256_of, visible_files
from tests.helpers.fileserver import Behaviour
from tests.helpers.ggufgen import make_gguf

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory) -> bytes:
    path = make_gguf(tmp_path_factory.mktemp("seg") / "big.gguf", tensor_bytes=24 * MiB, seed=7)
    return path.read_bytes()


@pytest.fixture
def seg_config(config):
    config.downloads.min_segment_size = 1 * MiB
    config.downloads.connections = 4
    return config


def _requested(records) -> list[tuple[int, int | None]]:
    ranges = []
    for record in records:
        match = re.match(r"bytes=(\d+)-(\d*)", record.headers.get("Range", "bytes=0-"))
        ranges.append((int(match.group(1)), int(match.group(2)) + 1 if match.group(2) else None))
    return ranges


async def _pull(engine: Engine, url: str, name: str = "big") -> JobState:
    spec = JobSpec(name, [FileRequest(url=url, dest=f"{name}.gguf")])
    job = await engine.wait(await engine.enqueue(spec))
    return job


async def test_clean_segmented_download_ranges_tile_the_file(server, seg_config, store, big_gguf):
    url = server.add("/big.gguf", big_gguf)
    async with Engine(seg_config) as engine:
        job = await _pull(engine, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == server.sha256("/big.gguf")
    records = server.requests("/big.gguf")
    assert len(records) > 4  # several connections, several bounded requests
    ranges = sorted(
        (start, end if end is not None else len(big_gguf)) for start, end in _requested(records)
    )
    position = 0
    for start, end in ranges:  # no overlap, no hole
        assert start == position, (start, position, ranges)
        position = end
    assert position == len(big_gguf)
    assert server.bytes_sent("/big.gguf") == len(big_gguf)


async def test_server_without_ranges_uses_one_stream(server, seg_config, store, big_gguf):
    url = server.add("/big.gguf", big_gguf, Behaviour(ignore_range=True))
    async with Engine(seg_config) as engine:
        job = await _pull(engine, url)
    assert job.state == JobState.COMPLETED, job.message
    assert len(server.requests("/big.gguf")) == 1
    assert sha256_of(store / "big.gguf") == server.sha256("/big.gguf")


async def test_small_file_is_not_split(server, seg_config, store, gguf_bytes):
    seg_config.downloads.min_segment_size = 4 * MiB  # 3 MiB file: not worth splitting
    url = server.add("/small.gguf", gguf_bytes)
    async with Engine(seg_config) as engine:
        job = await _pull(engine, url, "small")
    assert job.state == JobState.COMPLETED
    assert len(server.requests("/small.gguf")) == 1


async def test_stalled_connection_is_taken_over(server, seg_config, store, big_gguf):
    # The second request goes silent after 100 kB; the others finish and the stalled one resumes.
    url = server.add("/big.gguf", big_gguf, Behaviour(stall_after=[10**12, 100_000]))
    async with Engine(seg_config) as engine:
        job = await _pull(engine, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == server.sha256("/big.gguf")


@pytest.mark.parametrize("seed", range(6))
async def test_random_faults_always_end_with_the_right_file(server, seg_config, store, big_gguf, seed):
    rng = random.Random(seed)
    resets = [rng.choice([10**12, rng.randrange(1, 2 * MiB)]) for _ in range(30)]
    stalls = [10**12] * 30
    stalls[rng.randrange(0, 6)] = rng.randrange(0, MiB)
    behaviour = Behaviour(reset_after=resets, stall_after=stalls, rate=40 * MiB)
    url = server.add("/big.gguf", big_gguf, behaviour)
    seg_config.downloads.retries = 30
    async with Engine(seg_config) as engine:
        spec = JobSpec("big", [FileRequest(url=url, dest="big.gguf")])
        job_id = await engine.enqueue(spec)
        state_path = engine.layout.state_path(spec.files[0].key_hash)
        # Pause ("kill") at a random moment, then resume from the saved state.
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        await engine.pause(job_id)
        if state_path.exists():
            saved = ResumeState.load(state_path)
            assert saved.bytes_done <= len(big_gguf)
        await engine.resume(job_id)
        job = await engine.wait(job_id)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == server.sha256("/big.gguf")
    assert visible_files(store) == ["big.gguf"]


async def test_resume_of_segmented_partial_fetches_only_the_holes(server, seg_config, store, big_gguf):
    # The first request ([0, 4 MiB)) goes silent after 1 MiB while the other connections go on,
    # so the saved state has a hole below done bytes at the pause, whatever the pace at which
    # written ranges reach it (waiting for two saved ranges instead raced with the pause's own
    # final report, which often closes the gap between two neighbouring pieces).
    seg_config.downloads.stall_timeout = 30  # nobody takes the silent range over for 7.5 s
    behaviour = Behaviour(rate=8 * MiB, stall_after=[MiB])
    url = server.add("/big.gguf", big_gguf, behaviour)
    async with Engine(seg_config) as engine:
        spec = JobSpec("big", [FileRequest(url=url, dest="big.gguf")])
        job_id = await engine.enqueue(spec)
        state_path = engine.layout.state_path(spec.files[0].key_hash)
        while not state_path.exists() or ResumeState.load(state_path).bytes_done < 8 * MiB:
            await asyncio.sleep(0.02)
        await engine.pause(job_id)
        saved = ResumeState.load(state_path)
        assert missing_ranges(saved.ranges, saved.ranges[-1][1])  # a hole below done bytes
        before = len(server.requests("/big.gguf"))
        behaviour.rate = None
        await engine.resume(job_id)
        job = await engine.wait(job_id)
    assert job.state == JobState.COMPLETED, job.message
    for start, end in _requested(server.requests("/big.gguf")[before:]):
        end = end if end is not None else len(big_gguf)
        for done_start, done_end in saved.ranges:  # never asks again for saved bytes
            assert end <= done_start or start >= done_end, (start, end, saved.ranges)
    assert sha256_of(store / "big.gguf") == server.sha256("/big.gguf")


async def test_rate_limit_is_shared(server, seg_config, store, gguf_bytes):
    from gguf_tui.engine.ratelimit import RateLimiter

    limiter = RateLimiter(1 * MiB)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(limiter.acquire(256 * 1024) for _ in range(8)))
    elapsed = loop.time() - start
    # 2 MiB at 1 MiB/s with a 0.25 s burst allowance: clearly throttled, not instantaneous.
    assert elapsed >= 1.5


async def test_killed_segmented_pull_resumes_every_unfinished_range(
    server, tmp_path, store, big_gguf
):
    import signal

    from gguf_tui.engine.resume import ResumeState
    from gguf_tui.store.layout import StoreLayout
    from tests.conftest import start_pull

    config_file = tmp_path / "seg.yaml"
    config_file.write_text(
        f"store: {store}\ndownloads:\n  min_segment_size: 1M\n  connections: 4\n"
        "  state_save_interval: 0.2\n  retry_backoff: 0.05\n  stall_timeout: 30\n"
        "engine:\n  mode: local\n"  # the download runs in (and dies with) the killed process
    )
    # As above: a silent first request keeps a hole below done bytes until the kill.
    behaviour = Behaviour(rate=3 * MiB, stall_after=[MiB])
    url = server.add("/big.gguf", big_gguf, behaviour)
    state_path = StoreLayout(store).state_path(FileRequest(url=url, dest="big.gguf").key_hash)

    process = await start_pull(config_file, url)
    while True:
        await asyncio.sleep(0.05)
        try:
            saved = ResumeState.load(state_path)
        except Exception:  # noqa: BLE001 - not written yet
            continue
        if saved.bytes_done >= 6 * MiB:
            break
    process.send_signal(signal.SIGKILL)
    await process.wait()
    saved = ResumeState.load(state_path)
    assert missing_ranges(saved.ranges, saved.ranges[-1][1])  # filled out of order
    before = len(server.requests("/big.gguf"))
    behaviour.rate = None
    second = await start_pull(config_file, url)
    _out, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err.decode()
    for start, end in _requested(server.requests("/big.gguf")[before:]):
        end = end if end is not None else len(big_gguf)
        for done_start, done_end in saved.ranges:
            assert end <= done_start or start >= done_end, (start, end, saved.ranges)
    assert sha256_of(store / "big.gguf") == server.sha256("/big.gguf")
    assert visible_files(store) == ["big.gguf"]
