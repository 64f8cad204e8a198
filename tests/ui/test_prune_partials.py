"""The prune screen's partial downloads follow the store as it changes (issue 11.12), with the
bytes downloaded and the bytes reserved on disk shown apart (issue 11.13)."""

from __future__ import annotations

import asyncio
import os
import signal

from gguf_tui.engine.resume import ResumeState
from gguf_tui.engine.spec import FileRequest
from gguf_tui.store.layout import StoreLayout
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.render import format_pair, partial_sizes
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.units import format_size
from tests.conftest import start_pull
from tests.helpers.fileserver import Behaviour
from tests.ui.conftest import wait_for

# The watcher sees a change within a second or so; the old screen waited for the next full
# rescan (30 s and more). Generous, yet far below that.
SEEN_WITHIN = 10.0


def partial_rows(screen: PruneScreen) -> list[list[str]]:
    table = screen.query_one("#prune-partials")
    return [[str(cell).strip() for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def test_partial_of_a_cli_pull_appears_live_then_shows_downloaded_and_reserved(
    config, config_file, server, store, gguf_bytes
):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=400_000))
    key = FileRequest(url=url, dest="m.gguf").key_hash
    layout = StoreLayout(store)
    app = GgufApp(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None, what="scan")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune screen")
        screen = app.screen
        assert partial_rows(screen)[0][1] == "none"

        process = await start_pull(config_file, url)  # another process: the CLI
        try:
            await wait_for(pilot, lambda: any(p.key == key for p in screen.snapshot.partials),
                           timeout=SEEN_WITHIN, what="the CLI's partial on the prune screen")
            await wait_for(pilot, lambda: partial_rows(screen)[0][-1].startswith("pid "), what="its owner")
            first = partial_sizes(screen.snapshot.partials[0])[0] or 0
            await wait_for(pilot, lambda: (partial_sizes(screen.snapshot.partials[0])[0] or 0) > first,
                           timeout=SEEN_WITHIN, what="downloaded bytes growing")
            process.send_signal(signal.SIGINT)  # interrupted: the partial stays, abandoned
            await asyncio.wait_for(process.communicate(), 15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 130

        saved = ResumeState.load(layout.state_path(key)).bytes_done
        reserved = sum(os.stat(path).st_blocks * 512 for path in layout.partials_dir.glob(f"{key}*"))
        await wait_for(pilot, lambda: partial_rows(screen)[0][-1] == "abandoned", timeout=SEEN_WITHIN,
                       what="abandoned after the pull ended")
        await wait_for(pilot, lambda: partial_sizes(screen.snapshot.partials[0]) == (saved, reserved),
                       timeout=SEEN_WITHIN, what="final sizes")
        row = partial_rows(screen)[0]
        assert row[2] == format_pair(saved, len(gguf_bytes)) and row[3] == format_size(reserved)
        assert 0 < saved < len(gguf_bytes)

        await pilot.press("tab", "space")  # mark it: the summary frees what it reserves
        summary = str(screen.query_one("#prune-summary").render())
        assert "1 partial" in summary and f"frees {format_size(reserved)}" in summary
