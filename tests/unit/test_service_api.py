"""The engine interface in-process (`LocalEngine`): views, sequenced events, JSON round trips."""

from __future__ import annotations

import json

import pytest

from gguf_tui.engine.api import (
    CommandError,
    EngineAPI,
    ErrorKind,
    JobAdded,
    JobRemoved,
    JobState,
    JobView,
    OrderChanged,
    Progress,
    PullOptions,
    Snapshot,
    StateChanged,
    StateReason,
    event_from_json,
    QueueMirror,
)
from gguf_tui.engine.local import LocalEngine
from gguf_tui.engine.views import FileView, ResumeView
from gguf_tui.service.client import ServiceClient
from tests.conftest import sha256_of
from tests.helpers.fileserver import Behaviour


def test_both_transports_implement_the_interface(config):
    assert isinstance(LocalEngine(config), EngineAPI)
    from gguf_tui.service.paths import service_paths

    assert isinstance(ServiceClient(service_paths(config.store)), EngineAPI)


def test_views_and_events_round_trip_through_json():
    view = JobView(
        id=3, name="o/r:Q4_K_M", state=JobState.PAUSED, bytes_done=10, total=20, eta=None,
        files=(FileView("o/r/a.gguf", "model", 20, "ab" * 32,
                        ResumeView(10, 20, ((0, 5), (8, 13)), '"etag"', 1.5)),),
    )  # fmt: skip
    assert JobView.from_json(json.loads(json.dumps(view.to_json()))) == view
    events = [
        JobAdded(3, view=view, seq=1),
        JobRemoved(3, seq=2),
        OrderChanged(3, order=(4, 3), seq=3),
        StateChanged(3, "n", JobState.COMPLETED, "already in the store", StateReason.ALREADY_IN_STORE, seq=4),
        Progress(3, "n", 5, 20, 1.5, 10.0, seq=5),
    ]
    for event in events:
        assert event_from_json(json.loads(json.dumps(event.to_json()))) == event
    snapshot = Snapshot(7, (view,))
    assert Snapshot.from_json(json.loads(json.dumps(snapshot.to_json()))) == snapshot
    # The old positional constructors still work.
    assert StateChanged(1, "n", JobState.QUEUED).reason == StateReason.NONE


async def test_local_engine_numbers_events_and_types_reasons(server, config, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    async with LocalEngine(config) as engine:
        queue = QueueMirror(await engine.subscribe())
        assert queue.views() == []
        job_id = await engine.enqueue(url, PullOptions(sha256=server.sha256("/m.gguf")))
        seen = []
        views = await queue.follow([job_id], on_event=seen.append)
        assert views[job_id].state == JobState.COMPLETED
        assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
        sequence = [event.seq for event in seen]
        assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
        assert isinstance(seen[0], JobAdded) and seen[0].view.name == "m"

        snapshot = await engine.snapshot()
        assert snapshot.seq == sequence[-1] and snapshot.get(job_id) == queue.jobs[job_id]


async def test_already_in_store_has_its_reason(server, config, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    async with LocalEngine(config) as engine:
        first = await engine.enqueue(url)
        queue = QueueMirror(await engine.subscribe())
        await queue.follow([first])
        await engine.remove(first)
        second = await engine.enqueue(url)
        seen = []
        await queue.follow([second], on_event=seen.append)
        final = [e for e in seen if isinstance(e, StateChanged) and e.state == JobState.COMPLETED]
        assert final[-1].reason == StateReason.ALREADY_IN_STORE
        assert any(isinstance(e, JobRemoved) and e.job_id == first for e in seen)


async def test_pause_move_remove_show_as_events_and_views(server, config, gguf_bytes):
    url_a = server.add("/a.gguf", gguf_bytes, Behaviour(rate=500_000))
    url_b = server.add("/b.gguf", gguf_bytes, Behaviour(rate=500_000))
    async with LocalEngine(config) as engine:
        queue = QueueMirror(await engine.subscribe())
        a = await engine.enqueue(url_a)
        b = await engine.enqueue(url_b, PullOptions(paused=True))
        await queue.follow([a], done=lambda view: view.bytes_done > 0)
        await engine.pause(a)
        await engine.move(b, -1)
        seen = []
        views = await queue.follow([a, b], on_event=seen.append)
        assert views[a].state == JobState.PAUSED
        paused = [e for e in seen if isinstance(e, StateChanged) and e.job_id == a and e.state == JobState.PAUSED]
        assert paused and paused[-1].reason == StateReason.USER
        snapshot = await engine.snapshot()
        assert [view.id for view in snapshot.jobs] == [b, a]
        await queue.follow([b], done=lambda _view: queue.order == [b, a], on_event=seen.append)
        assert any(isinstance(e, OrderChanged) and e.order == (b, a) for e in seen)
        assert snapshot.get(a).files[0].resume is not None  # resume state is in the view
        with pytest.raises(CommandError) as refused:
            await engine.remove(a)
        assert refused.value.kind == ErrorKind.FAILED
        await engine.cancel(a)
        await engine.remove(a)
        assert [view.id for view in (await engine.snapshot()).jobs] == [b]
        with pytest.raises(CommandError) as missing:
            await engine.pause(999)
        assert missing.value.kind == ErrorKind.NOT_FOUND


async def test_unresolvable_ref_is_a_refused_command(config):
    async with LocalEngine(config) as engine:
        with pytest.raises(CommandError) as bad:
            await engine.enqueue("http://127.0.0.1:9/x.gguf", PullOptions(sha256="nothex"))
        assert bad.value.kind == ErrorKind.USAGE


async def test_outbox_coalesces_progress_in_place_and_drops_when_full():
    from gguf_tui.service.outbox import Outbox

    dropped = []
    outbox = Outbox(lambda: dropped.append(True), limit=4)
    outbox.put_event(Progress(1, "a", 10, 100, 1.0, None, seq=1))
    outbox.put_event(StateChanged(2, "b", JobState.PAUSED, seq=2))
    outbox.put_event(Progress(1, "a", 20, 100, 1.0, None, seq=3))
    outbox.put_event(Progress(1, "a", 30, 100, 1.0, None, seq=4))
    frames = [json.loads(line) for line in (await outbox.next_batch()).splitlines()]
    assert [(frame["event"], frame["seq"]) for frame in frames] == [("progress", 4), ("statechanged", 2)]
    for number in range(5):
        outbox.put_event(StateChanged(2, "b", JobState.PAUSED, seq=10 + number))
    assert dropped == [True] and outbox.overflowed and len(outbox) == 0


def test_service_clients_use_only_the_engine_interface():
    """The client side of the service imports nothing from the engine but engine/api.py."""
    import ast
    from pathlib import Path

    import gguf_tui

    root = Path(gguf_tui.__file__).parent
    for relative in ("service/client.py", "service/spawn.py", "cli/engine_cmds.py"):
        tree = ast.parse((root / relative).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("gguf_tui.engine"):
                    assert name == "gguf_tui.engine.api", (relative, name)


async def test_open_engine_in_local_mode_is_in_process(server, config, store, gguf_bytes):
    from gguf_tui.service.attach import open_engine

    url = server.add("/m.gguf", gguf_bytes)
    config.engine.mode = "local"
    engine = await open_engine(config)
    try:
        assert isinstance(engine, LocalEngine)
        queue = QueueMirror(await engine.subscribe())
        job_id = await engine.enqueue(url)
        assert (await queue.follow([job_id]))[job_id].state == JobState.COMPLETED
    finally:
        await engine.close()
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


def test_a_frame_nested_too_deeply_is_a_protocol_error_not_a_crash():
    from gguf_tui.service.protocol import ProtocolError, decode

    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(b'{"op":' + b"[" * 200_000 + b"]" * 200_000 + b"}")
