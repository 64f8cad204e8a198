"""The Hub imitation itself behaves as the engine and client tests rely on."""

from __future__ import annotations

import hashlib

import aiohttp

from tests.helpers.hubsim import DEFAULT_TOKEN, HubSim

DATA = bytes(range(256)) * 400  # 102400 bytes


async def _resolve(session: aiohttp.ClientSession, hub: HubSim, **headers: str) -> aiohttp.ClientResponse:
    async with session.get(
        hub.resolve_url("o/r", "m-Q4_K_M.gguf"), allow_redirects=False, headers=headers
    ) as response:
        return response


async def test_resolve_redirects_to_signed_cdn_url_on_another_host() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": DATA})
        async with aiohttp.ClientSession() as session:
            response = await _resolve(session, hub)
            assert response.status == 302
            location = response.headers["Location"]
            assert location.startswith(hub.cdn_origin)
            assert "X-Amz-Signature=" in location and "Expires=" in location
            sha = hashlib.sha256(DATA).hexdigest()
            assert response.headers["X-Linked-Etag"] == f'"{sha}"'
            assert response.headers["X-Linked-Size"] == str(len(DATA))
            assert response.headers["X-Repo-Commit"] == hub.repos["o/r"].sha

            async with session.get(location, headers={"Range": "bytes=100-199"}) as part:
                assert part.status == 206
                assert part.headers["Content-Range"] == f"bytes 100-199/{len(DATA)}"
                assert part.headers["ETag"] == f'"{sha}"'
                assert await part.read() == DATA[100:200]
            async with session.get(
                location, headers={"Range": "bytes=100-", "If-Range": '"other"'}
            ) as stale:
                assert stale.status == 200 and await stale.read() == DATA
            async with session.get(location, headers={"Range": f"bytes={len(DATA)}-"}) as past:
                assert past.status == 416
                assert past.headers["Content-Range"] == f"bytes */{len(DATA)}"
            async with session.get(location + "x") as forged:
                assert forged.status == 403
        assert hub.requests_to("cdn")[0].headers["Range"] == "bytes=100-199"
        assert hub.cdn_origin.split("//")[1].split(":")[0] != hub.endpoint.split("//")[1].split(":")[0]


async def test_expiry_switches() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": DATA})
        async with aiohttp.ClientSession() as session:
            first = (await _resolve(session, hub)).headers["Location"]
            async with session.get(first) as ok:
                assert ok.status == 200
            hub.expire_signed_urls()
            async with session.get(first) as expired:
                assert expired.status == 403
            fresh = (await _resolve(session, hub)).headers["Location"]
            assert fresh != first
            hub.signed_url_max_uses = 1
            async with session.get(fresh) as once:
                assert once.status == 200
            async with session.get(fresh) as again:
                assert again.status == 403
            hub.expired_status = 410
            async with session.get(fresh) as gone:
                assert gone.status == 410


async def test_gated_resolve_and_faults() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": DATA}, gated=True)
        async with aiohttp.ClientSession() as session:
            assert (await _resolve(session, hub)).status == 401
            wrong = await _resolve(session, hub, Authorization="Bearer nope")
            assert wrong.status == 403 and wrong.headers["X-Error-Code"] == "GatedRepo"
            good = await _resolve(session, hub, Authorization=f"Bearer {DEFAULT_TOKEN}")
            assert good.status == 302
            hub.fail(503, host="cdn", times=1)
            async with session.get(good.headers["Location"]) as failed:
                assert failed.status == 503
            hub.cdn_corrupt_times = 1
            async with session.get(good.headers["Location"]) as corrupt:
                assert (await corrupt.read()) != DATA
            async with session.get(good.headers["Location"]) as clean:
                assert (await clean.read()) == DATA


async def test_drop_cuts_the_body_short() -> None:
    async with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": DATA})
        hub.cdn_drop_after = 1000
        hub.cdn_drop_times = 1
        async with aiohttp.ClientSession() as session:
            location = (await _resolve(session, hub)).headers["Location"]
            received = b""
            try:
                async with session.get(location) as response:
                    async for chunk in response.content.iter_any():
                        received += chunk
            except aiohttp.ClientPayloadError:
                pass
            assert len(received) == 1000
            async with session.get(location) as response:
                assert await response.read() == DATA


def test_threaded_mode_serves_sync_callers() -> None:
    import urllib.request

    with HubSim() as hub:
        hub.add_repo("o/r", {"m-Q4_K_M.gguf": DATA})
        with urllib.request.urlopen(f"{hub.endpoint}/api/models?search=o") as response:
            assert b'"o/r"' in response.read()
