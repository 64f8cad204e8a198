"""Reading a remote GGUF header with Range requests instead of downloading the file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from gguf import GGUFWriter

from gguf_tui.hub import HubClient, HubError, read_remote_gguf
from tests.helpers.hubsim import DEFAULT_TOKEN, HubSim, gguf_bytes


def _big_header_gguf(tokens: int = 60_000, tensor_bytes: int = 4 << 20) -> bytes:
    """A GGUF whose header (a long token list) is bigger than the first Range request."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.gguf"
        writer = GGUFWriter(str(path), "llama")
        writer.add_name("big-header")
        writer.add_context_length(8192)
        writer.add_token_list([f"token-number-{i:06d}" for i in range(tokens)])
        writer.add_tensor("w", np.zeros(tensor_bytes // 4, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


@pytest.fixture(scope="module")
def big_header() -> bytes:
    return _big_header_gguf()


@pytest.fixture(scope="module")
def plain_model() -> bytes:
    return gguf_bytes(tensor_bytes=8 << 20, name="remote-test", context_length=2048)


async def test_reads_small_fraction_with_range(plain_model: bytes) -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": plain_model})
        async with aiohttp.ClientSession() as session:
            info, fetched = await read_remote_gguf(hub.resolve_url("o/r", "m-Q4_K_M.gguf"), session)
    assert info.architecture == "llama"
    assert info.name == "remote-test"
    assert info.context_length == 2048
    assert fetched <= 256 * 1024
    assert fetched < len(plain_model) / 20
    cdn = hub.requests_to("cdn")
    assert cdn and all(r.headers.get("Range", "").startswith("bytes=0-") for r in cdn)
    assert all(r.status == 206 for r in cdn)


async def test_grows_until_the_header_parses(big_header: bytes) -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"big-F32.gguf": big_header})
        hub.signed_url_max_uses = 1  # every reuse of a signed URL is "expired": must re-resolve
        async with aiohttp.ClientSession() as session:
            info, fetched = await read_remote_gguf(
                hub.resolve_url("o/r", "big-F32.gguf"), session, initial_bytes=64 * 1024
            )
    assert info.name == "big-header"
    assert info.tensor_count == 1
    assert fetched < len(big_header) / 2
    ranges = [r.headers["Range"] for r in hub.requests_to("cdn") if r.status == 206]
    assert len(ranges) >= 2
    assert ranges[0] == "bytes=0-65535"
    assert ranges[1].startswith("bytes=65536-")  # only the missing bytes are asked for
    assert any(r.status == 403 for r in hub.requests_to("cdn"))


async def test_gated_token_goes_to_the_hub_only(plain_model: bytes) -> None:
    async with HubSim() as hub:
        hub.add_repo("o/gated", {"m-Q4_K_M.gguf": plain_model}, gated=True)
        async with HubClient(hub.endpoint, token=DEFAULT_TOKEN) as client:
            info, _ = await client.read_gguf_header("o/gated", "m-Q4_K_M.gguf")
        assert info.architecture == "llama"
        api = [r for r in hub.requests_to("api") if "/resolve/" in r.path_qs]
        assert api and all(r.headers.get("Authorization") == f"Bearer {DEFAULT_TOKEN}" for r in api)
        assert hub.requests_to("cdn")
        assert all("Authorization" not in r.headers for r in hub.requests_to("cdn"))

        async with aiohttp.ClientSession() as session:
            with pytest.raises(HubError) as caught:
                await read_remote_gguf(hub.resolve_url("o/gated", "m-Q4_K_M.gguf"), session)
        assert caught.value.kind == "gated"


async def test_server_that_ignores_range(plain_model: bytes) -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": plain_model})
        hub.cdn_ignore_range = True
        async with aiohttp.ClientSession() as session:
            info, fetched = await read_remote_gguf(hub.resolve_url("o/r", "m-Q4_K_M.gguf"), session)
    assert info.name == "remote-test"
    assert fetched < len(plain_model) / 2


async def test_truncated_remote_file_is_a_gguf_error(plain_model: bytes) -> None:
    from gguf_tui.gguf import GGUFError

    async with HubSim() as hub:
        hub.add_repo("o/r", {"cut-Q4_K_M.gguf": plain_model[:200]})
        async with aiohttp.ClientSession() as session:
            with pytest.raises(GGUFError):
                await read_remote_gguf(hub.resolve_url("o/r", "cut-Q4_K_M.gguf"), session)


async def test_rate_limit_on_resolve_is_waited_out(plain_model: bytes) -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": plain_model})
        hub.fail(429, headers={"Retry-After": "0"}, path_contains="/resolve/", times=2)
        async with aiohttp.ClientSession() as session:
            info, _ = await read_remote_gguf(hub.resolve_url("o/r", "m-Q4_K_M.gguf"), session)
        assert info.architecture == "llama"
        assert [r.status for r in hub.requests_to("api")] == [429, 429, 302]
        hub.fail(429, headers={"Retry-After": "3600"}, path_contains="/resolve/")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(HubError, match="rate limiting"):
                await read_remote_gguf(hub.resolve_url("o/r", "m-Q4_K_M.gguf"), session)
