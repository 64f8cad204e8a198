"""The engine writes a partial download only into a regular file of its own.

Another user of a shared box can plant a symlink (pointing out of the store) or a FIFO where a
partial belongs; the engine used to open it with plain O_RDWR|O_CREAT, writing through the link
or blocking on the FIFO. Now the open refuses both with one clear line, and nothing outside the
store changes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gguf_tui.engine import FileRequest
from gguf_tui.engine.resume import ResumeState
from gguf_tui.store.layout import StoreLayout
from tests.conftest import start_pull


async def _pull_with_planted(server, config_file, store, gguf_bytes, plant) -> tuple[int, str]:
    url = server.add("/m.gguf", gguf_bytes)
    layout = StoreLayout(store)
    layout.ensure()
    request = FileRequest(url=url, dest="m.gguf")
    plant(layout.partial_path(request.key_hash))
    # A resume state beside it, as a paused download leaves: the engine then keeps the partial
    # instead of discarding it, and opens it for writing.
    ResumeState(request.resume_key, request.dest).save(layout.state_path(request.key_hash))
    process = await start_pull(config_file, url)
    try:
        _out, err = await asyncio.wait_for(process.communicate(), 30)
    except asyncio.TimeoutError:
        process.kill()
        await process.communicate()
        raise AssertionError("pull hung on the planted partial") from None
    return process.returncode, err.decode()


async def test_a_symlink_planted_as_the_partial_is_not_written_through(
    server, config_file, store, gguf_bytes, tmp_path: Path
) -> None:
    decoy = tmp_path / "outside" / "precious.bin"
    decoy.parent.mkdir()
    decoy.write_bytes(b"keep me")
    code, err = await _pull_with_planted(
        server, config_file, store, gguf_bytes, lambda partial: partial.symlink_to(decoy)
    )
    assert code == 1, err
    assert "not a regular file (a symlink)" in err and "Traceback" not in err
    assert decoy.read_bytes() == b"keep me"
    assert not (store / "m.gguf").exists()


async def test_a_fifo_planted_as_the_partial_does_not_hang_the_pull(
    server, config_file, store, gguf_bytes
) -> None:
    code, err = await _pull_with_planted(server, config_file, store, gguf_bytes, os.mkfifo)
    assert code == 1, err
    assert "not a regular file (a FIFO)" in err and "Traceback" not in err
    assert not (store / "m.gguf").exists()
