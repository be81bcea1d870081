"""The holes in Hypercorn that duorelay.transport.hypercorn_shims patches, one test
each (the numbers are the module docstring's), against the real server.

Clients speak raw TCP: frames are built here (masked with a zero key, so the
payload goes as is), responses are parsed with h11 or wsproto. Each test fails
without the patches: run it with ``hypercorn_shims.install`` made a no-op to see.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import h11
import pytest
import trio
import wsproto.events as ws_events
from wsproto.extensions import PerMessageDeflate

from conftest import RawClient, Server, StartServer, settle
from duorelay.cli import RelayConfig
from duorelay.transport import hypercorn_shims

TEXT, BINARY = 0x1, 0x2
MiB = 1024 * 1024


def frame(opcode: int, payload: bytes, *, length: int | None = None, rsv1: bool = False) -> bytes:
    """A final client frame of ``opcode``, masked with a zero key (the payload goes
    as is); ``length`` declares another payload length than ``len(payload)``."""
    length = len(payload) if length is None else length
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + bytes(4) + payload


async def close_code_then_eof(client: RawClient) -> int:
    """The code of the server's close frame (1006: none came); the server must
    then close the TCP connection."""
    event = await client.next_event()
    assert isinstance(event, ws_events.CloseConnection), event
    assert await client.stream.receive_some() == b"", "data after the close"
    return event.code


async def open_with_deflate(server: Server) -> tuple[RawClient, ws_events.AcceptConnection]:
    """A raw client whose handshake offers permessage-deflate, and the server's answer."""
    host, port = server.address.rsplit(":", 1)
    client = RawClient(await trio.open_tcp_stream(host, int(port)))
    offer = ws_events.Request(host=server.address, target="/ws", extensions=[PerMessageDeflate()])
    await client.stream.send_all(client.ws.send(offer))
    accepted = await client.next_event()
    assert isinstance(accepted, ws_events.AcceptConnection), accepted
    return client, accepted


@asynccontextmanager
async def http_request(
    server: Server, request: h11.Request, raw: bytes | None = None
) -> AsyncIterator[tuple[trio.SocketStream, h11.Response]]:
    """Send ``request`` (or ``raw``, the bytes of an equivalent request h11 would
    not send); give the stream and the complete response (its body read and
    dropped). The stream is closed on exit."""
    host, port = server.address.rsplit(":", 1)
    connection = h11.Connection(h11.CLIENT)
    data = connection.send(request) + connection.send(h11.EndOfMessage())
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(data if raw is None else raw)
        response = None
        while not isinstance(event := connection.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                response = event
        assert response is not None
        yield stream, response


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Trace allocations in the block; the list holds the peak (bytes) after it."""
    peak: list[int] = []
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1] - start)
        if not tracing:
            tracemalloc.stop()


def open_fds() -> int:
    """Open sockets of this process (database files the services open meanwhile
    do not count)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (listdir's own fd)
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_install_checks_and_is_idempotent() -> None:
    hypercorn_shims.install()  # create_app installed them: nothing to do
    for owner, name, _ in hypercorn_shims.EXPECTED:
        assert name in vars(owner)
    with pytest.raises(hypercorn_shims.ShimError, match="is not the code"):
        hypercorn_shims._check(*hypercorn_shims.EXPECTED[0][:2], "0" * 16)


# 1. Oversized frames


async def test_oversized_frame_1009_then_the_connection_is_closed(
    start_server: StartServer,
) -> None:
    server = await start_server(max_message_size=64 * 1024)
    limit = RelayConfig(server.app.settings).websocket_max_message_size
    client = await RawClient.open(server)
    async with client.stream:
        # A header announcing 2**62 bytes, then one byte more than the limit.
        await client.stream.send_all(frame(BINARY, bytes(limit + 1), length=1 << 62))
        with trio.fail_after(10):
            assert await close_code_then_eof(client) == 1009


async def test_oversized_frame_stream_is_cut_off_and_not_buffered(
    start_server: StartServer,
) -> None:
    server = await start_server(max_message_size=64 * 1024)
    chunk, total, sent = bytes(64 * 1024), 64 * MiB, 0
    async with server.join("calm", 0) as a, server.join("calm", 1) as b:
        attacker = await RawClient.open(server)
        async with attacker.stream:
            with peak_memory() as peak, trio.fail_after(60):
                try:
                    await attacker.stream.send_all(frame(BINARY, b"", length=1 << 62))
                    while sent < total:
                        await attacker.stream.send_all(chunk)
                        sent += len(chunk)
                except trio.BrokenResourceError:
                    pass  # the server closed the connection: what we want
        assert sent < total // 2, f"the server read {sent} bytes of one frame"
        assert peak[0] < 16 * MiB, f"{peak[0]} bytes allocated for one oversized frame"
        await a.send_message("undisturbed")
        assert await b.get_message() == "undisturbed"


# 2. Invalid frames


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"\xff\xfe"), 1007),  # not UTF-8: RFC 6455 section 8.1
        (frame(TEXT, b"caf\xc3"), 1007),  # a UTF-8 sequence cut short
        (bytes([0x81, 0x02]) + b"hi", 1002),  # not masked: a protocol error
        (frame(0x3, b""), 1002),  # a reserved opcode
    ],
    ids=["invalid-utf8", "truncated-utf8", "unmasked", "reserved-opcode"],
)
async def test_invalid_frame_gets_a_close_frame_with_its_code(
    server: Server, data: bytes, code: int
) -> None:
    client = await RawClient.open(server)
    async with client.stream:
        await client.stream.send_all(data)
        with trio.fail_after(10):
            assert await close_code_then_eof(client) == code


# 3. Sockets of ended websockets


async def test_socket_closed_at_once_when_the_client_half_closes(
    start_server: StartServer,
) -> None:
    server = await start_server(ping_interval=60, idle_timeout=120)
    client = await RawClient.open(server)
    async with client.stream:
        await client.stream.send_eof()  # FIN without a close frame: a tab killed
        with trio.fail_after(10):  # Hypercorn alone: one ping interval, 60 s
            while await client.stream.receive_some():
                pass  # pings sent before the server saw the FIN


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
async def test_socket_released_at_once_when_the_client_resets(
    start_server: StartServer,
) -> None:
    server = await start_server(ping_interval=60, idle_timeout=120)
    before = open_fds()
    client = await RawClient.open(server)
    await client.send("* gone_0")
    await settle()
    assert open_fds() == before + 2  # the client's socket and the server's
    client.reset()
    await settle()  # the server saw the reset and did all it does at once
    assert open_fds() == before


# 4. Responses that say Connection: close


@pytest.mark.parametrize(
    ("target", "raw"),
    [
        ("/healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("/healthz", b"GET /healthz HTTP/1.0\r\n\r\n"),  # HTTP/1.0: close by default
        ("/", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),  # a file
    ],
    ids=["connection-close", "http-1.0", "static-file"],
)
async def test_connection_close_response_closes_the_socket(
    server: Server, target: str, raw: bytes
) -> None:
    request = h11.Request(method="GET", target=target, headers=[("Host", "x")])
    async with http_request(server, request, raw) as (stream, response):
        assert response.status_code == 200
        assert (b"connection", b"close") in response.headers
        # Hypercorn's keep_alive_timeout (5 s) does not apply here: without the
        # patch the socket stays open for read_timeout (IDLE_TIMEOUT, 60 s);
        # 20 s leaves room for a loaded machine.
        with trio.fail_after(20):
            assert await stream.receive_some() == b""


# 5. Sec-WebSocket-Version


async def test_bad_websocket_version_400_names_version_13(server: Server) -> None:
    upgrade = h11.Request(
        method="GET",
        target="/ws",
        headers=[
            ("Host", server.address),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "8"),
        ],
    )
    async with http_request(server, upgrade) as (stream, response):
        assert response.status_code == 400
        assert (b"sec-websocket-version", b"13") in response.headers
        with trio.fail_after(2):  # and the connection is closed (patch 4)
            assert await stream.receive_some() == b""


# 6. permessage-deflate


async def test_permessage_deflate_is_off_by_default(server: Server) -> None:
    client, accepted = await open_with_deflate(server)
    async with client.stream:
        assert accepted.extensions == []
        # A client that compresses anyway breaks the protocol (RSV1 set).
        await client.stream.send_all(frame(TEXT, zlib.compress(b"* r_0")[2:-4], rsv1=True))
        with trio.fail_after(10):
            assert await close_code_then_eof(client) == 1002


async def test_permessage_deflate_with_the_setting(start_server: StartServer) -> None:
    server = await start_server(websocket_compression=True)
    async with server.join("zip", 1) as plain:  # trio-websocket offers no compression
        client, accepted = await open_with_deflate(server)
        async with client.stream:
            [deflate] = accepted.extensions
            assert isinstance(deflate, PerMessageDeflate)
            await client.send("* zip_0")
            await settle()
            text = "a compressible message " * 1000
            await client.send(text)  # wsproto compresses it
            assert await plain.get_message() == text
            await plain.send_message("back")
            assert await client.next_event() == ws_events.TextMessage("back")


async def test_permessage_deflate_bomb_is_inflated_only_to_the_limit(
    start_server: StartServer,
) -> None:
    server = await start_server(websocket_compression=True, max_message_size=64 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = b"".join(compressor.compress(bytes(MiB)) for _ in range(32))
    bomb += compressor.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 64 * 1024  # one read of the server's: it reads all of it
    client, _ = await open_with_deflate(server)
    async with client.stream:
        with peak_memory() as peak:
            # 32 KiB on the wire, 32 MiB inflated: the limit is 128 KiB.
            await client.stream.send_all(frame(BINARY, bomb, rsv1=True))
            with trio.fail_after(10):
                assert await close_code_then_eof(client) == 1009
    assert peak[0] < 8 * MiB, f"{peak[0]} bytes allocated for a {len(bomb)}-byte bomb"
