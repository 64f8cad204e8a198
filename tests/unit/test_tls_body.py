"""HTTPS bodies read and decrypted on a thread with the connection's own SSL object (issue 16):
the file lands whole through drops, stalls, several connections and a pause, and an answer whose
asyncio internals are not the expected ones stays with aiohttp, untouched."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine import tlsbody
from gguf_tui.engine.partial import PartialFile
from gguf_tui.engine.resume import ResumeState
from gguf_tui.engine.segments import Segment
from gguf_tui.engine.socketbody import BLOCK, receive
from tests.conftest import sha256_of, start_pull
from tests.helpers.fileserver import Behaviour, FileServer
from tests.helpers.ggufgen import make_gguf
from tests.helpers.sysdeps import ensure_command

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (certificate, key), written by openssl."""
    openssl = ensure_command("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    crt, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )
    # The engine verifies with aiohttp's default context, which Python builds once at import
    # from OpenSSL's default CA paths (SSL_CERT_FILE); a process started before the file
    # existed trusts it by adding it to that same context.
    aiohttp.connector._SSL_CONTEXT_VERIFIED.load_verify_locations(cafile=str(crt))
    return crt, key


@pytest.fixture(params=["TLSv1_3", "TLSv1_2"])
async def tls_server(certificate, request):
    """An HTTPS file server; each test runs with TLS 1.3 (session tickets arrive after the
    handshake, in the body's stream) and with TLS 1.2."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    context.maximum_version = getattr(ssl.TLSVersion, request.param)
    async with FileServer(ssl_context=context) as running:
        yield running


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory) -> bytes:
    path = make_gguf(tmp_path_factory.mktemp("tlsgguf") / "big.gguf", tensor_bytes=12 * MiB, seed=3)
    return path.read_bytes()


@pytest.fixture
def one_connection(config):
    config.downloads.connections = 1
    return config


async def _pull(config, url: str) -> JobState:
    async with Engine(config) as engine:
        return await engine.wait(await engine.enqueue(
            JobSpec("big", [FileRequest(url=url, dest="big.gguf")])
        ))


async def test_https_body_is_decrypted_on_the_thread(tls_server, one_connection, store, big_gguf):
    url = tls_server.add("/big.gguf", big_gguf)
    assert url.startswith("https://")
    taken_before = tlsbody.taken_count
    job = await _pull(one_connection, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == tls_server.sha256("/big.gguf")
    assert tlsbody.taken_count == taken_before + 1
    assert tls_server.bytes_sent("/big.gguf") == len(big_gguf)


async def test_dropped_https_connection_resumes(tls_server, one_connection, store, big_gguf):
    url = tls_server.add("/big.gguf", big_gguf, Behaviour(reset_after=[3 * MiB + 123, 5 * MiB]))
    taken_before = tlsbody.taken_count
    job = await _pull(one_connection, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == tls_server.sha256("/big.gguf")
    records = tls_server.requests("/big.gguf")
    assert len(records) == 3
    assert all("Range" in record.headers for record in records[1:])  # resumed, not restarted
    assert tlsbody.taken_count == taken_before + 3


async def test_stalled_https_connection_is_retried(tls_server, one_connection, store, big_gguf):
    url = tls_server.add("/big.gguf", big_gguf, Behaviour(stall_after=[2 * MiB]))
    job = await _pull(one_connection, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == tls_server.sha256("/big.gguf")
    assert len(tls_server.requests("/big.gguf")) == 2


async def test_segmented_https_download(tls_server, config, store, big_gguf):
    config.downloads.connections = 4
    config.downloads.min_segment_size = 1 * MiB
    url = tls_server.add("/big.gguf", big_gguf)
    taken_before = tlsbody.taken_count
    job = await _pull(config, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == tls_server.sha256("/big.gguf")
    # Every answer with a body still arriving is taken (one already whole in aiohttp's buffer,
    # here the 352-byte tail, has its connection released by aiohttp and stays there).
    large = [r for r in tls_server.requests("/big.gguf") if r.bytes_sent >= MiB]
    assert len(large) >= 3
    assert tlsbody.taken_count - taken_before >= len(large)
    assert tls_server.bytes_sent("/big.gguf") == len(big_gguf)


async def test_paused_https_download_resumes_whole(tls_server, one_connection, store, big_gguf):
    behaviour = Behaviour(rate=4 * MiB)
    url = tls_server.add("/big.gguf", big_gguf, behaviour)
    async with Engine(one_connection) as engine:
        spec = JobSpec("big", [FileRequest(url=url, dest="big.gguf")])
        job_id = await engine.enqueue(spec)
        state_path = engine.layout.state_path(spec.files[0].key_hash)
        while not state_path.exists() or not ResumeState.load(state_path).ranges:
            await asyncio.sleep(0.02)
        await engine.pause(job_id)  # mid-body: the receiving thread is stopped and waited for
        saved = ResumeState.load(state_path)
        behaviour.rate = None
        await engine.resume(job_id)
        job = await engine.wait(job_id)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == tls_server.sha256("/big.gguf")
    resumed = tls_server.requests("/big.gguf")[-1]
    assert resumed.range_start is not None and resumed.range_start >= saved.ranges[0][1]


async def test_chunked_https_answer_stays_with_aiohttp(tls_server, one_connection, store, big_gguf):
    url = tls_server.add("/big.gguf", big_gguf, Behaviour(chunked=True))
    taken_before = tlsbody.taken_count
    job = await _pull(one_connection, url)
    assert job.state == JobState.COMPLETED, job.message
    assert sha256_of(store / "big.gguf") == tls_server.sha256("/big.gguf")
    assert tlsbody.taken_count == taken_before


@pytest.mark.parametrize("internal", ["_incoming", "_sslobj", "_ssl_reading_paused", "_state"])
async def test_unexpected_internals_leave_the_body_untouched(tls_server, big_gguf, internal):
    # Another Python (or a patched asyncio) would hold something else here: nothing is taken,
    # and aiohttp still reads the whole body.
    url = tls_server.add("/big.gguf", big_gguf)
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        protocol = response.connection.transport._ssl_protocol
        original = getattr(protocol, internal)
        setattr(protocol, internal, object())
        try:
            assert tlsbody.take_tls_socket(response) is None
        finally:
            setattr(protocol, internal, original)
        body = await response.read()
    assert body == big_gguf


async def test_tls_body_takes_bytes_already_received_first(tls_server, big_gguf, tmp_path):
    # Once the loop has received ahead (part decrypted into aiohttp's buffer, part still
    # encrypted in asyncio's incoming BIO, its reading paused by flow control), the thread reads
    # those first, in order, then the socket.
    url = tls_server.add("/big.gguf", big_gguf)
    partial = PartialFile(tmp_path / "big.partial", "big.gguf")
    partial.open()
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            protocol = response.connection.transport._ssl_protocol
            while protocol._incoming.pending == 0:
                await asyncio.sleep(0.01)  # until asyncio holds encrypted bytes it has not read
            taken = tlsbody.take_tls_socket(response)
            assert taken is not None and taken.buffered
            body = tlsbody.TLSBody(
                taken, partial, Segment(0, len(big_gguf)), len(big_gguf), None, 5.0,
                (bytearray(BLOCK), bytearray(BLOCK)),
                on_written=lambda start, end: None, hand_back=lambda: False,
            )
            try:
                assert await receive(body) == len(big_gguf)
            finally:
                taken.abort()
        assert partial.hexdigest() == hashlib.sha256(big_gguf).hexdigest()
    finally:
        await partial.close()


async def test_https_through_a_connect_proxy_is_taken(tls_server, cli, store, big_gguf, monkeypatch):
    # Through squid's CONNECT tunnel the TLS layer is started on the proxy's connection
    # (loop.start_tls): the same SSL protocol over the socket to squid.
    from tests.helpers.squid import Squid

    url = tls_server.add("/big.gguf", big_gguf)
    taken_before = tlsbody.taken_count
    with Squid(cache=False) as squid:
        monkeypatch.setenv("HTTPS_PROXY", squid.url)
        result = await cli("pull", url, "--name", "big", "--connections", "1")
        tunnelled = [line for line in squid.log_lines() if "CONNECT" in line]
    assert result.code == 0, result.err
    assert tunnelled
    assert tlsbody.taken_count == taken_before + 1
    (placed,) = [path for path in store.rglob("*.gguf")]
    assert sha256_of(placed) == tls_server.sha256("/big.gguf")


async def test_cli_process_trusts_ssl_cert_file(tls_server, certificate, config_file, store,
                                                big_gguf, monkeypatch):
    # What the bench and a user with a private CA do: SSL_CERT_FILE for the whole process.
    url = tls_server.add("/big.gguf", big_gguf)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    process = await start_pull(config_file, url, "--name", "big",
                               "--sha256", tls_server.sha256("/big.gguf"))
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert tls_server.bytes_sent("/big.gguf") == len(big_gguf)


async def test_a_silent_https_peer_has_its_bytes_reported_while_waiting(
    tls_server, one_connection, store, big_gguf
):
    """The server sends 2 MiB and goes quiet with the connection open: all of it reaches the
    job's progress (and so the resume state) within a receive wait, not only when the stall
    timeout (30 s here) ends the request, so a kill meanwhile does not throw it away."""
    one_connection.downloads.stall_timeout = 30
    url = tls_server.add("/big.gguf", big_gguf, Behaviour(stall_after=[2 * MiB]))
    async with Engine(one_connection) as engine:
        job_id = await engine.enqueue(JobSpec("big", [FileRequest(url=url, dest="big.gguf")]))
        deadline = asyncio.get_running_loop().time() + 10  # bounds a failure only
        while engine.get(job_id).bytes_done < 2 * MiB:
            assert asyncio.get_running_loop().time() < deadline, engine.get(job_id).bytes_done
            await asyncio.sleep(0.05)
        assert engine.get(job_id).bytes_done == 2 * MiB
        await engine.pause(job_id)
