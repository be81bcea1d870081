"""The WMBP host/clients protocol end to end (PROTOCOLS.md section 2)."""

from __future__ import annotations

import json
import socket
import string
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

import cbor2
import pytest
import trio
import wsproto.events as ws_events
from trio_websocket import ConnectionClosed, WebSocketConnection

from conftest import (
    LogWatch,
    RawClient,
    Server,
    StartServer,
    closed_with,
    http_get,
    leftover_tasks,
    settle,
    ws_refused,
)

NO_RATE_LIMIT = {"max_rate": 1e9, "max_burst": 10**9}


class Host:
    """A WMBP host: sends maps as CBOR (or JSON), reads CBOR maps."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any], *, as_json: bool = False) -> None:
        await self.ws.send_message(json.dumps(message) if as_json else cbor2.dumps(message))

    async def recv(self) -> dict[str, Any]:
        frame = await self.ws.get_message()
        assert isinstance(frame, bytes), f"host messages are binary CBOR, got {frame!r}"
        message = cbor2.loads(frame)
        assert isinstance(message, dict)
        return message

    async def prepare(self, max_players: int = 8, name: str = "quiz") -> str:
        await self.send({"cmd": "prepare", "max_players": max_players, "name": name})
        state = await self.recv()
        assert state == {
            "cmd": "state",
            "name": name,
            "players": [],
            "max_players": max_players,
            "accept_conns": max_players > 0,
        }
        reply = await self.recv()
        assert reply["cmd"] == "prepare_reply"
        key = reply["key"]
        assert isinstance(key, str)
        return key


def state(
    players: list[int], max_players: int = 8, accept: bool = True, name: str = "quiz"
) -> dict[str, Any]:
    return {
        "cmd": "state",
        "name": name,
        "players": players,
        "max_players": max_players,
        "accept_conns": accept,
    }


@asynccontextmanager
async def hosting(server: Server) -> AsyncIterator[Host]:
    async with server.connect("/CREATE") as ws:
        host = Host(ws)
        assert await host.recv() == state([], max_players=0, accept=False, name="")
        yield host


@asynccontextmanager
async def player(
    server: Server, host: Host, code: str, expect_id: int
) -> AsyncIterator[WebSocketConnection]:
    """A client that joined: the host saw player_joined then state."""
    async with server.connect(f"/{code}") as ws:
        assert await host.recv() == {"cmd": "player_joined", "player": expect_id}
        message = await host.recv()
        assert message["cmd"] == "state" and expect_id in message["players"]
        yield ws


async def test_create_prepare_and_the_code(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare(max_players=4, name="Friday quiz ✓")
        assert len(code) == 4 and set(code) <= set(string.ascii_uppercase)
        status, headers, body = await http_get(server, f"/{code}")
        assert (status, body) == (200, "Friday quiz ✓".encode())
        assert headers["access-control-allow-origin"] == "*"
        assert headers["content-type"] == "text/plain; charset=utf-8"
        # A later prepare only repeats prepare_reply and changes nothing.
        await host.send({"cmd": "prepare", "max_players": 60, "name": "other"})
        assert await host.recv() == {"cmd": "prepare_reply", "key": code}
        assert (await http_get(server, f"/{code}"))[2] == "Friday quiz ✓".encode()
    await settle()
    status, headers, body = await http_get(server, f"/{code}")
    assert (status, body) == (404, b"Game not found")
    assert headers["access-control-allow-origin"] == "*"


async def test_json_host_input_and_prepare_without_name(server: Server) -> None:
    async with hosting(server) as host:
        await host.send({"cmd": "prepare", "max_players": 2}, as_json=True)
        assert await host.recv() == state([], max_players=2, name="")
        reply = await host.recv()
        async with player(server, host, reply["key"], 1) as client:
            await host.send({"cmd": "to_str", "to": [1], "data": "hi"}, as_json=True)
            assert await client.get_message() == "hi"
            await host.send({"cmd": "to", "to": [], "data": [0, 1, 255]}, as_json=True)
            assert await client.get_message() == b"\x00\x01\xff"


async def test_max_players_over_the_setting_is_an_error(start_server: StartServer) -> None:
    server = await start_server(wmbp_max_players=10)
    async with hosting(server) as host:
        await host.send({"cmd": "prepare", "max_players": 11})
        assert await host.recv() == {"cmd": "error", "reason": "prepare: max_players is over 10"}
        assert await host.prepare(max_players=10)  # still unprepared: this one works


async def test_join_frames_both_ways_and_leave(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare()
        async with player(server, host, code, 1) as one, player(server, host, code, 2) as two:
            await one.send_message("buzz")
            await two.send_message(bytes(range(256)))
            await one.send_message(b"")
            assert await host.recv() == {"cmd": "from_str", "from": 1, "data": "buzz"}
            assert await host.recv() == {"cmd": "from", "from": 2, "data": list(range(256))}
            assert await host.recv() == {"cmd": "from", "from": 1, "data": []}
            await host.send({"cmd": "to", "to": [2], "data": b"\x00\xffbytes"})
            await host.send({"cmd": "to_str", "to": [1, 1, 99], "data": "once"})
            await host.send({"cmd": "to_str", "to": [], "data": "everyone"})
            assert await two.get_message() == b"\x00\xffbytes"
            assert await one.get_message() == "once"
            assert await one.get_message() == "everyone"
            assert await two.get_message() == "everyone"
            await one.aclose()
            assert await host.recv() == {"cmd": "player_left", "player": 1}
            assert await host.recv() == state([2])
        assert await host.recv() == {"cmd": "player_left", "player": 2}
        assert await host.recv() == state([])


async def test_full_room_4423_host_gets_state_only(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare(max_players=1)
        async with player(server, host, code, 1):
            async with server.connect(f"/{code}") as late:
                assert await closed_with(late) == (4423, "the room is full or has started")
            assert await host.recv() == state([1], max_players=1, accept=False)
            await settle()
            # No player_left for a client that never joined: nothing else came.
            await host.send({"cmd": "kick", "player": 99})
            assert await host.recv() == state([1], max_players=1, accept=False)


async def test_start_stops_accepting(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare()
        async with player(server, host, code, 1):
            await host.send({"cmd": "start"})
            assert await host.recv() == state([1], accept=False)
            async with server.connect(f"/{code}") as late:
                assert (await closed_with(late))[0] == 4423
            assert await host.recv() == state([1], accept=False)


async def test_start_before_prepare_is_final(server: Server) -> None:
    async with hosting(server) as host:
        await host.send({"cmd": "start"})
        assert await host.recv() == state([], max_players=0, accept=False, name="")
        await host.send({"cmd": "prepare", "max_players": 3})
        assert await host.recv() == state([], max_players=3, accept=False, name="")
        code = (await host.recv())["key"]
        async with server.connect(f"/{code}") as late:
            assert (await closed_with(late))[0] == 4423


async def test_kick(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare()
        async with player(server, host, code, 1) as kicked, player(server, host, code, 2) as stays:
            await host.send({"cmd": "to_str", "to": [1], "data": "last words"})
            await host.send({"cmd": "kick", "player": 1})
            assert await host.recv() == state([2])  # at once, without player 1
            assert await kicked.get_message() == "last words"  # its outbox, then the close
            assert await closed_with(kicked) == (1000, "kicked")
            assert await host.recv() == {"cmd": "player_left", "player": 1}
            assert await host.recv() == state([2])
            await stays.send_message("still in")
            assert await host.recv() == {"cmd": "from_str", "from": 2, "data": "still in"}


async def test_kicked_clients_frames_are_not_forwarded(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare()
        client = await RawClient.open(server, f"/{code}")
        async with client.stream:
            assert (await host.recv())["cmd"] == "player_joined"
            assert (await host.recv())["cmd"] == "state"
            await host.send({"cmd": "kick", "player": 1})
            assert await host.recv() == state([])
            await client.send("after the kick")
            await settle()
            client.reset()
        assert await host.recv() == {"cmd": "player_left", "player": 1}
        assert await host.recv() == state([])


@pytest.mark.parametrize("how", ["stop", "close", "reset"])
async def test_host_end_closes_clients_4410_and_frees_the_code(
    server: Server, server_log: LogWatch, how: str
) -> None:
    async with server.connect("/CREATE") as ws:
        host = Host(ws)
        await host.recv()
        code = await host.prepare()
        async with player(server, host, code, 1) as one, player(server, host, code, 2) as two:
            await host.send({"cmd": "to_str", "to": [], "data": "bye"})
            if how == "stop":
                await host.send({"cmd": "stop"})
                assert await closed_with(ws) == (1001, "The game is done.")
            elif how == "close":
                await ws.aclose()
            else:
                # An abrupt drop of the host: RST, no close frame.
                sock = ws._stream.socket
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            for client in (one, two):
                assert await client.get_message() == "bye"
                assert await closed_with(client) == (4410, "the host closed the room")
    await server_log.wait_for("closed", wmbp="host")
    assert (await http_get(server, f"/{code}"))[0] == 404
    async with server.connect(f"/{code}") as late:
        assert await closed_with(late) == (4404, "no room with this code")
    await settle()
    assert len(server.app.rooms) == 0


async def test_unknown_code_4404_and_http_404(server: Server) -> None:
    async with server.connect("/ABCD") as ws:
        assert await closed_with(ws) == (4404, "no room with this code")
    status, _, body = await http_get(server, "/ABCD")
    assert (status, body) == (404, b"Game not found")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\xff\xfe", "not valid CBOR"),
        (b"", "not valid CBOR"),
        ("{not json", "not valid JSON"),
        (cbor2.dumps([1, 2]), "expected a map with a 'cmd' key, got list"),
        ('"text"', "expected a map with a 'cmd' key, got str"),
        (cbor2.dumps({"max_players": 2}), "the map has no 'cmd' string"),
        (cbor2.dumps({"cmd": "dance"}), "unknown cmd 'dance'"),
        (cbor2.dumps({"cmd": "prepare"}), "prepare: missing field 'max_players'"),
        (
            cbor2.dumps({"cmd": "prepare", "max_players": -1}),
            "prepare: 'max_players' must be an integer from 0 to 4294967295",
        ),
        (
            cbor2.dumps({"cmd": "prepare", "max_players": True}),
            "prepare: 'max_players' must be an integer from 0 to 4294967295",
        ),
        (
            cbor2.dumps({"cmd": "prepare", "max_players": 2, "name": 5}),
            "prepare: 'name' must be a string",
        ),
        (
            cbor2.dumps({"cmd": "kick", "player": "1"}),
            "kick: 'player' must be an integer from 0 to 4294967295",
        ),
        (
            cbor2.dumps({"cmd": "to", "to": [1], "data": [256]}),
            "to: 'data' must be bytes or a list of integers 0-255",
        ),
        (
            cbor2.dumps({"cmd": "to", "to": "all", "data": b""}),
            "to: 'to' must be a list of player ids",
        ),
        (
            cbor2.dumps({"cmd": "to_str", "to": [], "data": b"x"}),
            "to_str: 'data' must be a string",
        ),
        (
            '{"cmd": "prepare", "max_players": 2, "name": "\\ud800"}',
            "prepare: 'name' is not valid Unicode",
        ),
        ('{"cmd": "to_str", "to": [], "data": "\\udfff"}', "to_str: 'data' is not valid Unicode"),
    ],
)
async def test_bad_host_frames_get_an_error_and_the_connection_stays(
    server: Server, frame: str | bytes, reason: str
) -> None:
    async with hosting(server) as host:
        await host.ws.send_message(frame)
        error = await host.recv()
        assert error["cmd"] == "error"
        assert error["reason"].startswith(reason)
        assert await host.prepare()


async def test_server_commands_and_trailing_bytes_are_ignored(server: Server) -> None:
    async with hosting(server) as host:
        await host.send({"cmd": "state", "whatever": object.__name__})
        await host.send({"cmd": "from", "from": "x"})
        await host.ws.send_message(cbor2.dumps({"cmd": "start"}) + b"\xff garbage")
        assert await host.recv() == state([], max_players=0, accept=False, name="")


async def test_slow_client_4430_while_others_keep_receiving(start_server: StartServer) -> None:
    server = await start_server(outbox_size=16, **NO_RATE_LIMIT)
    count = 300
    async with hosting(server) as host:
        code = await host.prepare()
        stuck = await RawClient.open(server, f"/{code}")  # a phone that stopped reading
        async with stuck.stream:
            assert await host.recv() == {"cmd": "player_joined", "player": 1}
            assert await host.recv() == state([1])
            async with player(server, host, code, 2) as reader:
                # In lockstep with the reader, which never lags; the stuck
                # client's socket buffers, then its outbox, fill up.
                for n in range(count):
                    frame = n.to_bytes(4, "big") + bytes(65532)
                    await host.send({"cmd": "to", "to": [], "data": frame})
                    assert await reader.get_message() == frame
                # The stuck client was dropped and reported at once...
                assert await host.recv() == {"cmd": "player_left", "player": 1}
                assert await host.recv() == state([2])
                stuck.reset()
                await settle()
                # ...and never again when its socket went.
                await host.send({"cmd": "kick", "player": 99})
                assert await host.recv() == state([2])


async def test_host_that_stops_reading_4430_after_the_stall_timeout(
    start_server: StartServer, server_log: LogWatch
) -> None:
    """Rule 9: a host whose outbox stays full while a client waits longer than
    HOST_STALL_TIMEOUT is closed with 4430; its clients get 4410 (rule 7)."""
    server = await start_server(outbox_size=4, host_stall_timeout=0.2, **NO_RATE_LIMIT)
    host = await RawClient.open(server, "/CREATE")
    async with host.stream:
        await host.send(cbor2.dumps({"cmd": "prepare", "max_players": 2}))
        for _ in range(3):  # state, state, prepare_reply: then it stops reading
            event = await host.next_event()
        code = cbor2.loads(event.data)["key"]  # type: ignore[attr-defined]
        async with server.connect(f"/{code}") as flooder, server.connect(f"/{code}") as quiet:
            with pytest.raises(ConnectionClosed):  # the room's end stops the flood
                for _ in range(1000):
                    await flooder.send_message(bytes(65536))
            assert await closed_with(flooder) == (4410, "the host closed the room")
            assert await closed_with(quiet) == (4410, "the host closed the room")
        host.reset()  # frees the host's writer, stuck sending to it
        closed = await server_log.wait_for("closed", wmbp="host")
        assert (closed.code, closed.reason) == (4430, "too slow: the outbox stayed full for 0.2 s")


async def test_client_sending_fast_is_back_pressured_not_closed(server: Server) -> None:
    """Rule 9: 100 frames of 10 bytes at once from one client (inside its
    burst, in one TCP write) reach a host that reads as fast as it can, all in
    order; nobody is closed, and the other client is not disturbed."""
    count = 100
    frames = [n.to_bytes(2, "big") + bytes(8) for n in range(count)]
    async with hosting(server) as host:
        code = await host.prepare()
        fast = await RawClient.open(server, f"/{code}")
        assert await host.recv() == {"cmd": "player_joined", "player": 1}
        assert await host.recv() == state([1])
        async with fast.stream, player(server, host, code, 2) as other:
            burst = b"".join(fast.ws.send(ws_events.BytesMessage(frame)) for frame in frames)
            await fast.stream.send_all(burst)
            await other.send_message("me too")
            got = [await host.recv() for _ in range(count + 1)]
            assert [m for m in got if m["from"] == 1] == [
                {"cmd": "from", "from": 1, "data": list(frame)} for frame in frames
            ]
            assert {"cmd": "from_str", "from": 2, "data": "me too"} in got
            await host.send({"cmd": "to_str", "to": [], "data": "still here"})
            assert await other.get_message() == "still here"
            event = await fast.next_event()
            assert isinstance(event, ws_events.TextMessage) and event.data == "still here"
            await other.send_message("and again")
            assert await host.recv() == {"cmd": "from_str", "from": 2, "data": "and again"}


async def test_clients_waiting_on_a_full_host_are_freed_when_it_leaves(
    start_server: StartServer, server_log: LogWatch
) -> None:
    """Clients wait their turn on a host that stopped reading (the host is the
    bottleneck); when it leaves, every waiting client is woken at once and
    closed with 4410, and nothing is left behind."""
    outbox_size = 4
    server = await start_server(outbox_size=outbox_size, host_stall_timeout=3600, **NO_RATE_LIMIT)
    host = await RawClient.open(server, "/CREATE")
    async with host.stream:
        await host.send(cbor2.dumps({"cmd": "prepare", "max_players": 2}))
        for _ in range(3):  # state, state, prepare_reply: then it stops reading
            event = await host.next_event()
        code = cbor2.loads(event.data)["key"]  # type: ignore[attr-defined]
        async with (
            server.connect(f"/{code}") as one,
            server.connect(f"/{code}") as two,
            trio.open_nursery() as nursery,
        ):

            async def flood(ws: WebSocketConnection) -> None:
                with suppress(ConnectionClosed):
                    for _ in range(1000):
                        await ws.send_message(bytes(65536))

            nursery.start_soon(flood, one)
            nursery.start_soon(flood, two)
            await settle()  # everyone blocked: both clients wait for the host
            (host_session,) = [s for s in server.app.sessions if s.where.get("wmbp") == "host"]
            statistics = host_session.outbox.statistics()
            assert statistics.current_buffer_used == outbox_size
            assert statistics.tasks_waiting_send == 2
            host.reset()
            assert await closed_with(one) == (4410, "the host closed the room")
            assert await closed_with(two) == (4410, "the host closed the room")
    closed = await server_log.wait_for("closed", wmbp="host")
    assert (closed.code, closed.reason) == (None, "client went away")
    await server_log.wait_for("closed", room=code, count=2)
    await settle()
    assert len(server.app.rooms) == 0
    assert not server.app.sessions
    assert not leftover_tasks()


async def test_100_clients_in_one_room(start_server: StartServer) -> None:
    # 101 connections from 127.0.0.1: over the default per-address cap
    server = await start_server(wmbp_max_players=100, max_connections_per_address=200)
    async with hosting(server) as host:
        code = await host.prepare(max_players=100)
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(player(server, host, code, n))
                for n in range(1, 101)
            ]
            await host.send({"cmd": "to_str", "to": [], "data": "go"})
            for client in clients:
                assert await client.get_message() == "go"
            for n, client in enumerate(clients, 1):
                await client.send_message(f"answer {n}")
            got = [await host.recv() for _ in clients]
            assert sorted(m["from"] for m in got) == list(range(1, 101))
            assert all(m["data"] == f"answer {m['from']}" for m in got)


async def _read_all_then_answer_close(client: RawClient) -> tuple[list[bytes | str], int, str]:
    """Read a bare client's frames until the server's close, and answer it."""
    frames: list[bytes | str] = []
    partial: bytes | str | None = None
    while not isinstance(event := await client.next_event(), ws_events.CloseConnection):
        assert isinstance(event, ws_events.Message)
        partial = event.data if partial is None else partial + event.data  # type: ignore[operator]
        if event.message_finished:
            frames.append(partial)
            partial = None
    await client._send(event.response())
    return frames, event.code, event.reason


async def test_kicked_client_gets_its_queued_frames_and_is_reported_when_gone(
    start_server: StartServer,
) -> None:
    server = await start_server(**NO_RATE_LIMIT)
    frames = [n.to_bytes(4, "big") + bytes(100_000) for n in range(12)]
    async with hosting(server) as host:
        code = await host.prepare()
        client = await RawClient.open(server, f"/{code}")  # not reading for now
        async with client.stream:
            assert (await host.recv())["cmd"] == "player_joined"
            assert await host.recv() == state([1])
            for frame in frames:
                await host.send({"cmd": "to", "to": [1], "data": frame})
            await host.send({"cmd": "kick", "player": 1})
            assert await host.recv() == state([])
            await host.send({"cmd": "kick", "player": 99})
            # Its socket is not gone yet (its frames are still queued): no player_left.
            assert await host.recv() == state([])
            received, code_, reason = await _read_all_then_answer_close(client)
            assert received == frames
            assert (code_, reason) == (1000, "kicked")
            assert await host.recv() == {"cmd": "player_left", "player": 1}
            assert await host.recv() == state([])


async def test_clients_get_their_queued_frames_before_4410(start_server: StartServer) -> None:
    server = await start_server(**NO_RATE_LIMIT)
    frames = [n.to_bytes(4, "big") + bytes(100_000) for n in range(12)]
    async with hosting(server) as host:
        code = await host.prepare()
        client = await RawClient.open(server, f"/{code}")
        async with client.stream:
            assert (await host.recv())["cmd"] == "player_joined"
            assert (await host.recv())["cmd"] == "state"
            for frame in frames:
                await host.send({"cmd": "to", "to": [], "data": frame})
            await host.send({"cmd": "stop"})
            assert await closed_with(host.ws) == (1001, "The game is done.")
            received, code_, reason = await _read_all_then_answer_close(client)
            assert received == frames
            assert (code_, reason) == (4410, "the host closed the room")


async def test_rooms_cap_error_then_4429(start_server: StartServer) -> None:
    server = await start_server(wmbp_max_rooms=1)
    async with hosting(server) as first:
        await first.prepare()
        async with hosting(server) as second:
            await second.send({"cmd": "prepare", "max_players": 2})
            reason = "the server holds its maximum of 1 rooms"
            assert await second.recv() == {"cmd": "error", "reason": reason}
            assert await closed_with(second.ws) == (4429, reason)


async def test_oversized_host_frame_1009_ends_the_room(start_server: StartServer) -> None:
    server = await start_server(max_message_size=1000)
    async with hosting(server) as host:
        code = await host.prepare()
        async with player(server, host, code, 1) as client:
            await host.ws.send_message(bytes(1001))
            assert (await closed_with(host.ws))[0] == 1009
            assert await closed_with(client) == (4410, "the host closed the room")
    await settle()
    assert (await http_get(server, f"/{code}"))[0] == 404


async def test_codes_are_case_sensitive(server: Server) -> None:
    async with hosting(server) as host:
        code = await host.prepare()
        # a lowercase path is no room code: no websocket route there (404)
        assert await ws_refused(server, f"/{code.lower()}") == 404
        assert (await http_get(server, f"/{code.lower()}"))[0] == 404
