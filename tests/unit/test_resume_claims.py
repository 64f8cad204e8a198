"""The resume state never claims a byte the partial does not hold: after a pause, and after a
SIGKILL of a pull, every saved range holds the server's bytes (a claimed byte is never fetched
again, so a wrong claim would end in a corrupt file or a failed checksum)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine.resume import ResumeState, merge_ranges
from gguf_tui.store.layout import StoreLayout
from tests.conftest import sha256_of, start_pull
from tests.helpers.fileserver import Behaviour
from tests.helpers.ggufgen import make_gguf

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> bytes:
    path = make_gguf(tmp_path_factory.mktemp("claims") / "c.gguf", tensor_bytes=20 * MiB, seed=11)
    return path.read_bytes()


def _wrong_claims(partial: Path, ranges: list[list[int]], source: bytes) -> list[tuple[int, int]]:
    """The saved ranges whose bytes in the partial differ from the server's."""
    on_disk = partial.read_bytes()
    return [(start, end) for start, end in ranges if on_disk[start:end] != source[start:end]]


async def _wait_for_saved(state_path: Path, at_least: int) -> ResumeState:
    """The first saved state with `at_least` bytes done (and more than one range when asked
    for more than zero bytes, so that several connections are filling the file)."""
    while True:
        await asyncio.sleep(0.02)
        try:
            saved = ResumeState.load(state_path)
        except Exception:  # noqa: BLE001 - not written yet, or replaced meanwhile
            continue
        if saved.bytes_done >= at_least and saved.ranges:
            return saved


@pytest.mark.parametrize(
    "pause_after, resets",
    [
        (0, []),  # the first saved bytes
        (6 * MiB, []),  # several connections mid-piece
        (12 * MiB, [10**12, 1536 * 1024, 10**12, 3 * MiB + 5]),  # after dropped connections
    ],
)
async def test_a_paused_state_claims_only_the_servers_bytes(
    server, config, store, source, pause_after, resets
):
    config.downloads.min_segment_size = 1 * MiB
    config.downloads.connections = 4
    url = server.add("/c.gguf", source, Behaviour(rate=8 * MiB, reset_after=resets))
    async with Engine(config) as engine:
        spec = JobSpec("c", [FileRequest(url=url, dest="c.gguf")])
        job_id = await engine.enqueue(spec)
        key_hash = spec.files[0].key_hash
        state_path = engine.layout.state_path(key_hash)
        earlier = await _wait_for_saved(state_path, pause_after)
        await engine.pause(job_id)
        saved = ResumeState.load(state_path)
        assert saved.bytes_done > 0
        # Ranges only grow: the pause keeps everything saved before it ...
        assert merge_ranges(earlier.ranges + saved.ranges) == saved.ranges, (earlier, saved)
        # ... and claims nothing that is not on disk.
        partial = engine.layout.partial_path(key_hash)
        assert _wrong_claims(partial, saved.ranges, source) == [], saved.ranges
        await engine.resume(job_id)
        job = await engine.wait(job_id)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "c.gguf") == server.sha256("/c.gguf")


@pytest.mark.parametrize("kill_after", [2 * MiB, 9 * MiB])
async def test_a_killed_pulls_state_claims_only_the_servers_bytes(
    server, tmp_path, store, source, kill_after
):
    config_file = tmp_path / "claims.yaml"
    config_file.write_text(
        f"store: {store}\ndownloads:\n  min_segment_size: 1M\n  connections: 4\n"
        "  state_save_interval: 0.1\n  retry_backoff: 0.05\n"
        "engine:\n  mode: local\n"  # the download runs in (and dies with) the killed process
    )
    behaviour = Behaviour(rate=6 * MiB)
    url = server.add("/c.gguf", source, behaviour)
    key_hash = FileRequest(url=url, dest="c.gguf").key_hash
    layout = StoreLayout(store)
    process = await start_pull(config_file, url)
    waiting = asyncio.ensure_future(_wait_for_saved(layout.state_path(key_hash), kill_after))
    exited = asyncio.ensure_future(process.wait())
    await asyncio.wait([waiting, exited], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not exited.done():
        process.send_signal(signal.SIGKILL)
    await exited
    assert process.returncode == -signal.SIGKILL, (await process.stderr.read()).decode()
    saved = ResumeState.load(layout.state_path(key_hash))
    assert saved.bytes_done >= kill_after
    assert _wrong_claims(layout.partial_path(key_hash), saved.ranges, source) == [], saved.ranges
    behaviour.rate = None
    second = await start_pull(config_file, url)
    _out, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err.decode()
    assert sha256_of(store / "c.gguf") == server.sha256("/c.gguf")
