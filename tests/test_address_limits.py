"""Limits per client address: failed room-code lookups, connections held open.

A second client address is 127.0.0.2 (any 127.0.0.0/8 address is loopback on
Linux): the client socket is bound to it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

from conftest import LogWatch, RawClient, Server, StartServer, http_get, ws_refused
from duorelay.cluster.redis import RedisBackplane
from duorelay.core.limits import Buckets
from duorelay.observability import Stats
from test_wmbp import hosting, player

LIMITED = "too many failed lookups: try again later"
OTHER = "127.0.0.2"
SLOW = {"lookup_rate": 0.001, "lookup_burst": 3}  # no refill during a test: 1 per 1000 s


async def ws_close(server: Server, path: str, source: str | None = None) -> tuple[int, Any]:
    """Open websocket ``path``; the close code and reason the server sends."""
    client = await RawClient.open(server, path, source)
    async with client.stream:
        return await client.closed()


async def test_failed_http_lookups_over_the_burst_get_429(start_server: StartServer) -> None:
    server = await start_server(**SLOW)
    for _ in range(3):
        assert (await http_get(server, "/ZZZZ"))[::2] == (404, b"Game not found")
    status, headers, body = await http_get(server, "/ZZZZ")
    assert (status, body) == (429, LIMITED.encode())
    assert headers["retry-after"] == "1000"  # seconds until the bucket holds a token
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["access-control-allow-origin"] == "*"
    # the same bucket for websocket clients of that address
    assert await ws_close(server, "/ZZZZ") == (4429, LIMITED)
    # another address is not limited
    assert (await http_get(server, "/ZZZZ", OTHER))[::2] == (404, b"Game not found")
    assert await ws_close(server, "/ZZZZ", OTHER) == (4404, "no room with this code")


async def test_failed_websocket_lookups_over_the_burst_get_4429(
    start_server: StartServer,
) -> None:
    server = await start_server(**SLOW)
    for code in ("ZZZZ", "YYYY", "XXXX"):
        assert await ws_close(server, f"/{code}") == (4404, "no room with this code")
    assert await ws_close(server, "/WWWW") == (4429, LIMITED)
    assert (await http_get(server, "/ZZZZ"))[::2] == (429, LIMITED.encode())
    assert await ws_close(server, "/ZZZZ", OTHER) == (4404, "no room with this code")


async def test_successful_lookups_are_not_charged(start_server: StartServer) -> None:
    server = await start_server(**SLOW)
    async with hosting(server) as host:
        code = await host.prepare(max_players=8, name="quiz")
        for _ in range(10):
            assert (await http_get(server, f"/{code}"))[::2] == (200, b"quiz")
        async with AsyncExitStack() as stack:
            for n in range(1, 6):
                await stack.enter_async_context(player(server, host, code, n))
        for _ in range(3):
            assert (await http_get(server, "/ZZZZ"))[::2] == (404, b"Game not found")
        # Past the limit every lookup is refused, found or not: a found code
        # would otherwise still tell a guesser apart from a miss.
        assert (await http_get(server, f"/{code}"))[::2] == (429, LIMITED.encode())
        assert await ws_close(server, f"/{code}") == (4429, LIMITED)


async def test_a_path_that_is_no_room_code_is_no_lookup(start_server: StartServer) -> None:
    server = await start_server(**SLOW)
    # (/uttt is the UTTT server's websocket; GET /uttt redirects to its page /uttt/.)
    for path in ("/abcd", "/utt", "/ABC1", "/abcd", "/Uttt"):
        status, _, body = await http_get(server, path)
        assert status == 404 and body != b"Game not found"
        assert await ws_refused(server, path) == 404
    # none of them was charged: the bucket is still full
    for _ in range(3):
        assert (await http_get(server, "/ZZZZ"))[::2] == (404, b"Game not found")


async def test_a_kamon_join_is_no_lookup(start_server: StartServer) -> None:
    server = await start_server(**SLOW)
    for _ in range(3):
        await http_get(server, "/ZZZZ")
    async with server.join("room", 0) as a, server.join("room", 1) as b:
        await a.send_message("hi")
        assert await b.get_message() == "hi"


TOO_MANY_HERE = "too many connections from your address: try again later"


async def joined(server: Server, log: LogWatch, room: str, source: str | None = None) -> RawClient:
    """A Kamon client from ``source`` that joined seat 0 of ``room`` (the server
    logged it: a refused connection never joins)."""
    client = await RawClient.open(server, "/ws", source)
    await client.send(f"* {room}_0")
    await log.wait_for("joined", room=room, seat=0)
    return client


async def test_connections_per_address_are_capped(
    start_server: StartServer, server_log: LogWatch
) -> None:
    server = await start_server(max_connections_per_address=2)
    first = await joined(server, server_log, "a")
    second = await joined(server, server_log, "b")
    assert await ws_close(server, "/ws") == (4429, TOO_MANY_HERE)
    assert await ws_close(server, "/CREATE") == (4429, TOO_MANY_HERE)
    # another address is not affected
    other = await joined(server, server_log, "c", OTHER)
    assert server.app.connections_per_address == {"127.0.0.1": 2, OTHER: 1}
    # closing a connection frees its slot
    first.reset()
    await server_log.wait_for("closed", room="a", reason="client went away")
    third = await joined(server, server_log, "d")
    for client in (second, other, third):
        await client.stream.aclose()


@pytest.mark.parametrize(
    ("cap", "reason"),
    [
        ({"max_connections": 1}, "too many connections: try again later"),
        ({"max_connections_per_address": 1}, TOO_MANY_HERE),
    ],
)
async def test_a_refused_connection_does_not_count(
    start_server: StartServer, server_log: LogWatch, cap: dict[str, int], reason: str
) -> None:
    server = await start_server(**cap)
    held = await joined(server, server_log, "a")
    # Refused: it never answers the close frame, so the server waits for it
    # (up to 5 s) while the next connection comes.
    refused = await RawClient.open(server, "/ws")
    assert await refused.closed() == (4429, reason)
    assert len(server.app.sessions) == 1
    held.reset()
    await server_log.wait_for("closed", room="a", reason="client went away")
    assert not server.app.sessions and not server.app.connections_per_address
    again = await joined(server, server_log, "b")
    assert len(server.app.sessions) == 1
    await again.stream.aclose()
    await refused.stream.aclose()


async def test_without_redis_the_lookup_limit_falls_back_to_this_process() -> None:
    backplane = RedisBackplane("redis://127.0.0.1:1/0", "duorelay", 10.0, Stats())
    assert not backplane.available  # never connected
    assert [await backplane.charge("k", 0.001, 2) for _ in range(3)] == [True, True, False]
    assert await backplane.charge("k", 0.001, 2, cost=0) is False
    assert await backplane.charge("other", 0.001, 2) is True


def test_the_bucket_map_stays_bounded() -> None:
    buckets = Buckets(capacity=3)
    for n in range(100):  # 100 addresses at once: only the 3 most recent are kept
        assert buckets.charge(f"10.0.0.{n}", 1.0, 2, now=0.0)
    assert len(buckets) == 3
    assert buckets.charge("10.0.0.99", 1.0, 2, now=0.0)
    assert not buckets.charge("10.0.0.99", 1.0, 2, now=0.0)  # its bucket was kept
    # A bucket full again is forgotten: it is no different from a new one.
    assert buckets.charge("10.0.0.1", 1.0, 2, now=10.0)
    assert len(buckets) == 1
    assert buckets.charge("10.0.0.1", 1.0, 2, now=10.0, cost=0)
