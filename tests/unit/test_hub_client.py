"""HubClient against the local Hub imitation: search, paging, cache, tree, errors, safety."""

from __future__ import annotations

import time

import aiohttp
import pytest

from gguf_tui.hub import HubClient, HubError
from tests.helpers.hubsim import DEFAULT_TOKEN, HubSim, SimFile


@pytest.fixture(autouse=True)
def _no_user_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_sleep(_seconds: float) -> None:
    return None


def _search_hub(**kwargs) -> HubSim:
    hub = HubSim(**kwargs)
    for index in range(5):
        hub.add_repo(f"org{index}/Qwen3-{index}B-GGUF", {}, downloads=index * 100, likes=index)
    hub.add_repo("org/not-gguf-qwen", {}, tags=["safetensors"], downloads=10_000)
    hub.add_repo("org/Llama-GGUF", {}, downloads=5)
    return hub


async def test_search_pages_through_link_and_stops_at_limit() -> None:
    async with _search_hub(search_page_size=2) as hub:
        async with HubClient(hub.endpoint, token=None) as client:
            results = await client.search("qwen3", limit=50)
            assert [r.id for r in results] == [f"org{i}/Qwen3-{i}B-GGUF" for i in (4, 3, 2, 1, 0)]
            assert results[0].downloads == 400 and results[0].likes == 4
            assert results[0].last_modified and "gguf" in results[0].tags
            searches = [r for r in hub.requests_to("api") if r.path_qs.startswith("/api/models?")]
            assert len(searches) == 3  # 2 + 2 + 1
            first = searches[0].path_qs
            for part in ("search=qwen3", "filter=gguf", "sort=downloads", "direction=-1", "limit=50"):
                assert part in first
            hub.clear_requests()
            limited = await client.search("qwen3", limit=3)
            assert len(limited) == 3
            assert len(hub.requests_to("api")) == 2


async def test_search_results_are_cached_briefly() -> None:
    clock = FakeClock()
    async with _search_hub() as hub:
        async with HubClient(hub.endpoint, token=None, clock=clock) as client:
            first = await client.search("qwen3")
            again = await client.search("qwen3")
            assert first == again
            assert len(hub.requests_to("api")) == 1
            clock.now += 61
            await client.search("qwen3")
            assert len(hub.requests_to("api")) == 2


async def test_gated_flag_in_search() -> None:
    async with HubSim() as hub:
        hub.add_repo("meta/Gated-GGUF", {}, gated=True)
        async with HubClient(hub.endpoint, token=None) as client:
            (result,) = await client.search("gated")
            assert result.gated is True


async def test_tree_listing_with_paging_and_lfs_oid_validation() -> None:
    async with HubSim(tree_page_size=2) as hub:
        good = b"x" * 1000
        hub.add_repo(
            "o/r",
            {
                "M-Q4_K_M.gguf": good,
                "sub/M-Q8_0.gguf": b"y" * 2000,
                "M-Q2_K.gguf": SimFile("M-Q2_K.gguf", b"z" * 10, lfs_oid="not-a-sha256"),
                "M-Q3_K_S.gguf": SimFile("M-Q3_K_S.gguf", b"w" * 10, lfs_oid="g" * 64),
                "M-Q6_K.gguf": SimFile("M-Q6_K.gguf", b"v" * 10, lfs_oid="A" * 64),
                "README.md": SimFile("README.md", b"# hi", lfs=False),
            },
        )
        async with HubClient(hub.endpoint, token=None) as client:
            tree = await client.list_tree("o/r")
            files, skipped = tree.files, tree.skipped
            assert tree.truncated_at is None
            by_path = {f.path: f for f in files}
            assert set(by_path) == {
                "M-Q4_K_M.gguf", "sub/M-Q8_0.gguf", "M-Q2_K.gguf", "M-Q3_K_S.gguf",
                "M-Q6_K.gguf", "README.md",
            }  # fmt: skip
            assert not skipped
            assert by_path["M-Q4_K_M.gguf"].size == 1000
            assert by_path["M-Q4_K_M.gguf"].sha256 == hub.repos["o/r"].files["M-Q4_K_M.gguf"].sha256
            assert by_path["M-Q2_K.gguf"].sha256 is None
            assert by_path["M-Q3_K_S.gguf"].sha256 is None
            assert by_path["M-Q6_K.gguf"].sha256 == "a" * 64
            assert by_path["README.md"].sha256 is None and by_path["README.md"].size == 4
            trees = [r for r in hub.requests_to("api") if "/tree/" in r.path_qs]
            assert len(trees) >= 4  # 8 entries (incl. one folder) in pages of 2
            assert "recursive=true" in trees[0].path_qs

            repo_files = await client.repo_files("O/R")  # ids match case-insensitively
            assert repo_files.repo == "o/r"
            assert repo_files.commit == hub.repos["o/r"].sha
            assert [g.quant for g in repo_files.quants] == [
                "Q2_K", "Q3_K_S", "Q6_K", "Q4_K_M", "Q8_0",
            ]  # fmt: skip
            assert repo_files.license == "apache-2.0"


async def test_unsafe_tree_paths_are_skipped_and_escape_names_sanitised() -> None:
    evil = "evil\x1b[31mred\x1b[0m-Q4_K_M.gguf"
    async with HubSim() as hub:
        hub.add_repo(
            "o/r",
            {
                "../../escape-Q4_K_M.gguf": b"a",
                "/abs-Q4_K_M.gguf": b"b",
                "dir\\win-Q4_K_M.gguf": b"c",
                "bad\x07dir/x-Q4_K_M.gguf": b"d",
                evil: b"e" * 10,
            },
        )
        async with HubClient(hub.endpoint, token=None) as client:
            repo_files = await client.repo_files("o/r")
    reasons = {s.path: s.reason for s in repo_files.skipped}
    assert set(reasons) == {
        "../../escape-Q4_K_M.gguf", "/abs-Q4_K_M.gguf", "dir\\win-Q4_K_M.gguf", "baddir/x-Q4_K_M.gguf",
    }  # fmt: skip
    assert reasons["/abs-Q4_K_M.gguf"] == "absolute path"
    (group,) = repo_files.quants
    (hub_file,) = group.files
    assert hub_file.path == evil  # kept exact for the URL
    assert hub_file.name == "evilred-Q4_K_M.gguf"
    assert hub_file.local_name == "evilred-Q4_K_M.gguf"
    assert "\x1b" not in str(repo_files.to_json())


async def test_repo_not_found_message() -> None:
    async with HubSim() as hub:
        async with HubClient(hub.endpoint, token=None) as client:
            with pytest.raises(HubError) as caught:
                await client.repo_files("nobody/nothing")
    assert caught.value.kind == "not_found"
    assert "nobody/nothing not found" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_revision_not_found_message() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": b"x"})
        async with HubClient(hub.endpoint, token=None) as client:
            with pytest.raises(HubError, match="revision 'v9' not found in o/r"):
                await client.repo_files("o/r", "v9")


async def test_gated_access_check_messages() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/gated", {"m-Q4_K_M.gguf": b"x"}, gated=True)
        async with HubClient(hub.endpoint, token=None) as client:
            with pytest.raises(HubError) as caught:
                await client.check_access("o/gated", "m-Q4_K_M.gguf")
        message = str(caught.value)
        assert caught.value.kind == "gated"
        assert "gated" in message and "accept the terms" in message
        assert "HF_TOKEN" in message and "$HF_HOME/token" in message
        assert f"{hub.endpoint}/o/gated" in message

        async with HubClient(hub.endpoint, token="hf_wrong_token_123") as client:
            with pytest.raises(HubError) as caught:
                await client.check_access("o/gated", "m-Q4_K_M.gguf")
        assert caught.value.kind == "gated" and "no access" in str(caught.value)
        assert "hf_wrong_token_123" not in str(caught.value) + repr(caught.value)

        async with HubClient(hub.endpoint, token=DEFAULT_TOKEN) as client:
            await client.check_access("o/gated", "m-Q4_K_M.gguf")
        assert hub.requests_to("api")[-1].headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"
        assert not hub.requests_to("cdn")  # HEAD without following the redirect


async def test_plain_401_and_403_messages() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {})
        async with HubClient(hub.endpoint, token=None) as client:
            hub.fail(401, path_contains="/api/models/o/r")
            with pytest.raises(HubError, match="needs a token") as caught:
                await client.repo_info("o/r")
            assert caught.value.kind == "auth"
            hub.fail(403, path_contains="/api/models/o/r")
            with pytest.raises(HubError, match="denied access") as caught:
                await client.repo_info("o/r")
            assert caught.value.status == 403


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    async with _search_hub() as hub:
        hub.fail(429, headers={"Retry-After": "1"}, path_contains="/api/models?")
        async with HubClient(hub.endpoint, token=None) as client:
            started = time.monotonic()
            results = await client.search("qwen3")
            elapsed = time.monotonic() - started
    assert results
    assert elapsed >= 0.9
    assert [r.status for r in hub.requests_to("api")] == [429, 200]


async def test_429_retries_are_bounded() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with _search_hub() as hub:
        hub.fail(429, headers={"Retry-After": "7"}, times=100)
        async with HubClient(hub.endpoint, token=None, sleep=record) as client:
            with pytest.raises(HubError) as caught:
                await client.search("qwen3")
    assert caught.value.kind == "rate_limited"
    assert waits == [7.0, 7.0, 7.0]
    assert len(hub.requests_to("api")) == 4


async def test_server_errors_retry_and_never_echo_the_token() -> None:
    token = "hf_secret_abcdef123456"
    async with HubSim() as hub:
        hub.add_repo("o/r", {})
        body = f'{{"error": "internal error for token {token}"}}'.encode()
        hub.fail(500, times=3, body=body, path_contains="/api/models/o/r")
        async with HubClient(hub.endpoint, token=token, sleep=_no_sleep) as client:
            with pytest.raises(HubError) as caught:
                await client.repo_info("o/r")
            assert token not in repr(client)
    assert caught.value.status == 500
    assert token not in str(caught.value) and token not in repr(caught.value)
    assert "<token>" in str(caught.value)


async def test_client_uses_callers_session_and_keeps_it_open() -> None:
    async with _search_hub() as hub:
        async with aiohttp.ClientSession() as session:
            async with HubClient(hub.endpoint, session=session, token=None) as client:
                assert await client.search("llama")
            assert not session.closed


async def test_token_comes_from_env_then_token_file(monkeypatch, tmp_path) -> None:
    from gguf_tui.hub import get_token

    assert get_token() is None
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_from_file\n")
    assert get_token() == "hf_from_file"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert get_token() == "hf_from_env"
    client = HubClient("http://127.0.0.1:1")
    assert client.has_token and "hf_from_env" not in repr(client)
    assert client.auth_headers_for("http://127.0.0.1:1/x") == {"Authorization": "Bearer hf_from_env"}
    assert client.auth_headers_for("http://127.0.0.2:1/x") == {}
    assert client.auth_headers_for("https://127.0.0.1:1/x") == {}


async def test_retry_after_past_the_deadline_is_reported_at_once() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with _search_hub() as hub:
        hub.fail(429, headers={"Retry-After": "30"}, times=100)
        async with HubClient(hub.endpoint, token=None, sleep=record, api_timeout=5) as client:
            with pytest.raises(HubError) as caught:
                await client.search("qwen3")
    assert caught.value.kind == "rate_limited" and "try again in 30 s" in str(caught.value)
    assert waits == []  # no wait that the deadline would cut short anyway
