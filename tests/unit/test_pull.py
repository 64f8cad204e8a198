"""`gguf-tui pull` against a local server that misbehaves on purpose (DESIGN.md section 5)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sha256_of, visible_files
from tests.helpers.fileserver import Behaviour


def _no_partials(store) -> bool:
    partials = store / ".gguf-tui" / "partials"
    return not partials.exists() or not any(partials.iterdir())


@pytest.mark.both_modes
async def test_clean_download_then_noop(server, cli, store, gguf_bytes):
    url = server.add("/models/tiny.gguf", gguf_bytes)
    expected = server.sha256("/models/tiny.gguf")

    first = await cli("pull", url, "--sha256", expected)
    assert first.code == 0, first.err
    assert "done, SHA-256 verified" in first.out
    assert sha256_of(store / "tiny.gguf") == expected
    assert visible_files(store) == ["tiny.gguf"]
    assert _no_partials(store)
    manifest = json.loads(next((store / ".gguf-tui" / "manifests").glob("*.json")).read_text())
    assert manifest["files"][0]["sha256"] == expected
    assert manifest["files"][0]["size"] == len(gguf_bytes)
    assert manifest["files"][0]["etag"]
    assert manifest["source"]["url"] == url

    requests_before = len(server.requests("/models/tiny.gguf"))
    second = await cli("pull", url)
    assert second.code == 0
    assert "already in the store" in second.out
    assert len(server.requests("/models/tiny.gguf")) == requests_before  # no new download
    assert sha256_of(store / "tiny.gguf") == expected


@pytest.mark.both_modes
async def test_reset_twice_resumes_with_range(server, cli, store, gguf_bytes):
    size = len(gguf_bytes)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(reset_after=[size // 3, size // 3]))
    result = await cli("pull", url)
    assert result.code == 0, result.err
    # Each retry followed progress, so the count of consecutive failures starts again at 1.
    assert result.err.count("retrying 1/5 in") == 2
    records = server.requests("/m.gguf")
    assert len(records) == 3
    assert records[1].headers["Range"] == f"bytes={size // 3}-"
    assert records[2].headers["Range"] == f"bytes={2 * (size // 3)}-"
    assert records[1].headers["If-Range"]
    # Resumed, never restarted: the server sent each byte once.
    assert server.bytes_sent("/m.gguf") == size
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert visible_files(store) == ["m.gguf"] and _no_partials(store)


async def test_server_ignoring_range_restarts_from_zero(server, cli, store, gguf_bytes):
    size = len(gguf_bytes)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(reset_after=[size // 2], ignore_range=True))
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "again from 0" in result.err
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert _no_partials(store)


async def test_etag_change_gets_whole_file_through_if_range(server, cli, store, gguf_bytes):
    size = len(gguf_bytes)
    url = server.add(
        "/m.gguf", gguf_bytes, Behaviour(reset_after=[size // 2], etag_changes_after_first=True)
    )
    result = await cli("pull", url)
    assert result.code == 0, result.err
    second = server.requests("/m.gguf")[1]
    assert second.headers["If-Range"] != '"changed"'
    assert second.status == 200  # If-Range did not match: the whole file
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_corrupt_once_then_retried(server, cli, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(corrupt_attempts=1))
    result = await cli("pull", url, "--sha256", server.sha256("/m.gguf"))
    assert result.code == 0, result.err
    assert "checksum mismatch" in result.err
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_corrupt_every_time_fails_after_three_attempts(server, cli, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(corrupt_attempts=99))
    result = await cli("pull", url, "--sha256", server.sha256("/m.gguf"))
    assert result.code == 1
    assert "download corrupted" in result.err
    assert len(server.requests("/m.gguf")) == 3  # 1 + 2 automatic retries
    assert visible_files(store) == []
    assert _no_partials(store)


async def test_503_with_retry_after_then_success(server, cli, store, gguf_bytes):
    url = server.add(
        "/m.gguf", gguf_bytes, Behaviour(statuses=[(503, {"Retry-After": "1"})])
    )
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "retrying 1/5 in 1.0 s: server answered 503" in result.err
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


@pytest.mark.both_modes
async def test_404_fails_at_once_naming_url_without_query(server, cli, store):
    url = server.url("/missing.gguf") + "?token=secret123"
    result = await cli("pull", url)
    assert result.code == 1
    assert "not found (404)" in result.err
    assert server.url("/missing.gguf") in result.err
    assert "secret123" not in result.err + result.out
    assert len(server.requests("/missing.gguf")) == 1
    assert visible_files(store) == []


async def test_html_page_with_sha_is_corruption(server, cli, store, gguf_bytes):
    server.add("/real.gguf", gguf_bytes)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(html_instead=True))
    result = await cli("pull", url, "--sha256", server.sha256("/real.gguf"))
    assert result.code == 1
    assert "download corrupted" in result.err
    assert visible_files(store) == []
    assert _no_partials(store)


async def test_chunked_body_without_content_length(server, cli, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes, Behaviour(chunked=True))
    result = await cli("pull", url, "--sha256", server.sha256("/m.gguf"))
    assert result.code == 0, result.err
    assert server.requests("/m.gguf")[0].headers.get("Accept-Encoding") == "identity"
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


async def test_stalled_connection_is_dropped_and_resumed(server, cli, store, gguf_bytes):
    size = len(gguf_bytes)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(stall_after=[size // 4]))
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "stalled: no data for 1 s" in result.err
    resumed = server.requests("/m.gguf")[1]
    assert resumed.range_start is not None and resumed.range_start > 0
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


@pytest.mark.both_modes
async def test_garbage_resume_state_is_discarded_with_notice(server, cli, store, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    # Leave a partial with a broken state, as a crash in the middle of a write could.
    from gguf_tui.engine.spec import FileRequest
    from gguf_tui.store.layout import StoreLayout

    layout = StoreLayout(store)
    layout.ensure()
    key = FileRequest(url=url, dest="m.gguf").key_hash
    layout.partial_path(key).write_bytes(b"\x00" * 1000)
    layout.state_path(key).write_text('{"format": 1, "resume_key": ')
    result = await cli("pull", url)
    assert result.code == 0, result.err
    assert "discarded a partial download" in result.err
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")
    assert _no_partials(store)


@pytest.mark.both_modes
async def test_json_output_is_one_event_per_line(server, cli, gguf_bytes):
    url = server.add("/m.gguf", gguf_bytes)
    result = await cli("pull", url, "--json")
    assert result.code == 0
    events = [json.loads(line) for line in result.out.splitlines()]
    kinds = {event["event"] for event in events}
    assert {"statechanged", "done"} <= kinds
    states = [event["state"] for event in events if event["event"] == "statechanged"]
    assert states[0] == "queued" and states[-1] == "completed"


@pytest.mark.both_modes
async def test_status_lists_partial_with_validator(server, cli, store, gguf_bytes):
    size = len(gguf_bytes)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(statuses=[]))
    server.behaviours["/m.gguf"].reset_after = [size // 2] + [0] * 10
    result = await cli("pull", url)
    assert result.code == 1
    assert "gave up" in result.err
    status = await cli("status", "--json")
    data = json.loads(status.out)
    [row] = data["partials"]
    assert row["bytes_done"] == size // 2 // (64 * 1024) * (64 * 1024) or row["bytes_done"] > 0
    assert row["total"] == size
    assert row["validator"].startswith('"')
    text = await cli("status")
    assert "m.gguf" in text.out and "validator" in text.out
    # The same pull resumes from the saved state once the server behaves.
    server.behaviours["/m.gguf"].reset_after = []
    server._counts["/m.gguf"] = 0
    again = await cli("pull", url)
    assert again.code == 0, again.err
    assert server.requests("/m.gguf")[-1].range_start == row["bytes_done"]
    assert sha256_of(store / "m.gguf") == server.sha256("/m.gguf")


@pytest.mark.both_modes
async def test_bad_arguments_exit_2(cli):
    result = await cli("pull", "http://127.0.0.1:9/x.gguf", "--sha256", "abc")
    assert result.code == 2
    assert "--sha256 must be 64 hexadecimal characters" in result.err
