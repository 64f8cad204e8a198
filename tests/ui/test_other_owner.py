"""A second dashboard on the same store shows another process's download as that process's."""

from __future__ import annotations

import asyncio

from gguf_tui.engine.resume import ResumeState
from gguf_tui.engine import Engine
from gguf_tui.engine.api import PullOptions
from gguf_tui.engine.spec import FileRequest, JobSpec, JobState
from gguf_tui.store.layout import StoreLayout
from gguf_tui.tui.app import GgufApp
from gguf_tui.tui.screens.confirm import ConfirmScreen
from tests.conftest import sha256_of, start_pull
from tests.helpers.fileserver import Behaviour
from tests.ui.conftest import detail_text, wait_for


async def test_dashboard_shows_a_pull_of_another_process_live_and_will_not_cancel_it(
    config, config_file, server, store, gguf_bytes
):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=400_000))
    layout = StoreLayout(store)
    key = FileRequest(url=url, dest="m.gguf").key_hash
    owner = await start_pull(config_file, url)

    def saved() -> int:
        try:
            return ResumeState.load(layout.state_path(key)).bytes_done
        except Exception:  # noqa: BLE001 - not written yet
            return 0

    while saved() == 0:
        await asyncio.sleep(0.02)
    app = GgufApp(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._engine_ready and app.jobs, what="the owner's job listed")
        [job_id] = app.jobs
        queue = app.query_one("#queue")
        await wait_for(pilot, lambda: queue.get_cell(str(job_id), "state").plain.strip()
                       == "downloading elsewhere", what="shown as someone else's")
        assert not any("from earlier" in n.message for n in app._notifications)
        first = app.jobs[job_id].bytes_done
        await wait_for(pilot, lambda: app.jobs[job_id].bytes_done > first, what="live progress")
        await pilot.press("tab")
        assert queue.current_job_id == job_id
        assert f"pid {owner.pid}" in detail_text(app)

        await pilot.press("c")
        await wait_for(pilot, lambda: any("only another process" in n.message for n in app._notifications),
                       what="the reason cancel is refused")
        assert not isinstance(app.screen, ConfirmScreen)
        assert layout.partial_path(key).exists()

        server.behaviours["/m.gguf"].rate = None
        _out, err = await asyncio.wait_for(owner.communicate(), 20)
        assert owner.returncode == 0, err.decode()
        await wait_for(pilot, lambda: app.jobs[job_id].state == JobState.COMPLETED, what="completed there")
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_cancel_dialog_says_the_partial_is_kept_when_another_engine_owns_it(
    config, server, store, gguf_bytes
):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=300_000))
    spec = lambda: JobSpec("m", [FileRequest(url=url, dest="m.gguf")])  # noqa: E731
    key = spec().files[0].key_hash
    async with Engine(config) as other:  # another dashboard's engine on the same store
        other_id = await other.enqueue(spec())
        while not other.get(other_id).bytes_done:
            await asyncio.sleep(0.02)
        app = GgufApp(config)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app._engine_ready and app.jobs, what="listed")
            job_id = await app.engine.enqueue(url, PullOptions(name="m"))  # asked for here too: waits for the owner
            await wait_for(pilot, lambda: app.engine.queue.get(job_id).running_here
                           and app.jobs[job_id].state == JobState.ELSEWHERE, what="waiting here")
            await pilot.press("tab", "c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
            body = app.screen.body.plain
            assert "is kept" in body and "deleted" not in body
            await pilot.press("y")
            await wait_for(pilot, lambda: app.jobs[job_id].state == JobState.CANCELLED, what="cancelled here")
            assert StoreLayout(store).partial_path(key).exists()
        server.behaviours["/m.gguf"].rate = None
        assert (await other.wait(other_id)).state == JobState.COMPLETED
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
