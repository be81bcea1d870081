"""Limits that hold across processes: failed room-code lookups per client address."""

from __future__ import annotations

from conftest import http_get
from scaleout.conftest import RedisServer, duorelays
from test_address_limits import LIMITED, OTHER, ws_close

SLOW = {"DUORELAY_LOOKUP_RATE": "0.001", "DUORELAY_LOOKUP_BURST": "3"}


async def test_failed_lookups_on_one_process_count_on_another(redis: RedisServer) -> None:
    async with duorelays(redis, 2, **SLOW) as [(_, server_a), (_, server_b)]:
        assert (await http_get(server_a, "/ZZZZ"))[::2] == (404, b"Game not found")
        assert await ws_close(server_a, "/YYYY") == (4404, "no room with this code")
        assert (await http_get(server_b, "/XXXX"))[::2] == (404, b"Game not found")
        for server in (server_a, server_b):
            status, headers, body = await http_get(server, "/ZZZZ")
            assert (status, body) == (429, LIMITED.encode())
            assert headers["retry-after"] == "1000"
            assert await ws_close(server, "/ZZZZ") == (4429, LIMITED)
        # another address is not limited, on either process
        assert (await http_get(server_b, "/ZZZZ", OTHER))[::2] == (404, b"Game not found")
        assert await ws_close(server_a, "/ZZZZ", OTHER) == (4404, "no room with this code")
        async with redis.client() as client:
            assert await client.exists(["duorelay:lookups:127.0.0.1"]) == 1
