"""The store watcher: one event per copy, rename and delete; nothing for the hidden folder."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.watcher import StoreChange, watch_store
from tests.helpers.ggufgen import make_gguf

EVENT_WITHIN = 2.0


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gguf(tmp_path_factory.mktemp("src") / "m.gguf", tensor_bytes=1 << 20)


class Recorder:
    """Runs the watcher in a task and collects what it yields."""

    def __init__(self, root: Path, **options) -> None:
        self.root = root
        self.options = options
        self.events: list[StoreChange] = []
        self.arrived = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Recorder:
        self.task = asyncio.create_task(self._run())
        await asyncio.sleep(0.3)  # let inotify set its watches
        return self

    async def _run(self) -> None:
        async for change in watch_store(self.root, self.stop, **self.options):
            self.events.append(change)
            self.arrived.set()

    async def next_events(self, quiet: float = 0.6) -> list[StoreChange]:
        """Wait (bounded) for the first event, then a quiet spell; return and clear them."""
        await asyncio.wait_for(self.arrived.wait(), EVENT_WITHIN)
        await asyncio.sleep(quiet)
        events, self.events = self.events, []
        self.arrived.clear()
        return events

    async def __aexit__(self, *exc_info) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 3)


async def test_copy_rename_delete_each_give_one_event(store, model_file):
    store.mkdir(parents=True)
    async with Recorder(store) as recorder:
        shutil.copy(model_file, store / "copied.gguf")
        assert await recorder.next_events() == [StoreChange("added", store / "copied.gguf")]

        (store / "sub").mkdir()
        os.rename(store / "copied.gguf", store / "sub" / "renamed.gguf")
        assert await recorder.next_events() == [
            StoreChange("renamed", store / "sub" / "renamed.gguf", store / "copied.gguf")
        ]

        (store / "sub" / "renamed.gguf").unlink()
        assert await recorder.next_events() == [
            StoreChange("removed", store / "sub" / "renamed.gguf")
        ]


async def test_hidden_folder_and_temp_files_give_nothing(store, model_file):
    layout = StoreLayout(store)
    layout.ensure()
    async with Recorder(store) as recorder:
        data = model_file.read_bytes()
        layout.partial_path("a" * 32).write_bytes(data)
        layout.state_path("a" * 32).write_text("{}")
        layout.lock_path("a" * 32).write_text("{}")
        (layout.manifests_dir / "m.json").write_text("{}")
        (layout.hidden / "jobs").mkdir()
        (layout.hidden / "jobs" / "j.json").write_text("{}")
        (store / ".rsync-tmp.gguf.XyZ").write_bytes(data)  # another tool's temp file
        (store / "notes.txt").write_text("not a model")
        await asyncio.sleep(1.2)  # settle time and more: a model file would show by now
        assert recorder.events == []


async def test_a_file_is_added_only_once_complete(store, model_file):
    store.mkdir(parents=True)
    data = model_file.read_bytes()
    async with Recorder(store) as recorder:
        with open(store / "slow.gguf", "wb") as handle:
            for start in range(0, len(data), 128 << 10):
                handle.write(data[start : start + (128 << 10)])
                handle.flush()
                await asyncio.sleep(0.1)
                assert recorder.events == []  # a growing file is not a model yet
        assert await recorder.next_events(quiet=0.3) == [
            StoreChange("added", store / "slow.gguf")
        ]


async def test_folder_moved_in_and_manifest_changes_on_request(store, tmp_path, model_file):
    layout = StoreLayout(store)
    layout.ensure()
    outside = tmp_path / "owner" / "repo"
    outside.mkdir(parents=True)
    shutil.copy(model_file, outside / "a.gguf")
    async with Recorder(store, include_manifests=True) as recorder:
        os.rename(tmp_path / "owner", store / "owner")
        assert await recorder.next_events() == [
            StoreChange("added", store / "owner" / "repo" / "a.gguf")
        ]
        (layout.manifests_dir / "m.json").write_text("{}")
        assert await recorder.next_events() == [
            StoreChange("manifest", layout.manifests_dir / "m.json")
        ]


async def test_stop_event_ends_the_iteration_promptly(store):
    stop = asyncio.Event()

    async def run() -> list:
        return [change async for change in watch_store(store, stop)]

    task = asyncio.create_task(run())
    await asyncio.sleep(0.2)
    stop.set()
    assert await asyncio.wait_for(task, 2.0) == []
