"""The Kamon relay end to end (PROTOCOLS.md section 1), on real Hypercorn."""

from __future__ import annotations

import gc

import pytest
import trio
import trio.lowlevel
import wsproto.events as ws_events

from conftest import (
    SERVICE_TASKS,
    Flood,
    RawClient,
    Server,
    StartServer,
    closed_with,
    settle,
    task_names,
)

NO_RATE_LIMIT = {"max_rate": 1e9, "max_burst": 10**9}


async def test_join_and_relay_both_ways(server: Server) -> None:
    async with server.join("room", 0) as host, server.join("room", 1) as guest:
        await settle()
        await host.send_message("from host")
        assert await guest.get_message() == "from host"
        await guest.send_message("from guest")
        assert await host.get_message() == "from guest"


async def test_text_and_binary_stay_distinct_and_byte_exact(server: Server) -> None:
    frames: list[str | bytes] = [
        "text",
        b"text",
        bytes(range(256)),
        b"",
        "",
        "héllo wörld ✓ 🎲",
        "\x00 nul and \r\n in text",
        b"\xff\xfe invalid utf-8 in binary",
    ]
    async with server.join("r", 0) as a, server.join("r", 1) as b:
        await settle()
        for frame in frames:
            await a.send_message(frame)
        received = [await b.get_message() for _ in frames]
    assert received == frames
    assert [type(f) for f in received] == [type(f) for f in frames]


async def test_kamon_frontend_handshake_order(server: Server) -> None:
    """The frontend sends ``* r_0`` then ``*``; the peer's ``*`` asks the host
    for its state, and the host's early ``*`` was dropped, never queued."""
    async with server.connect() as host:
        await host.send_message("* game_0")
        await host.send_message("*")
        await settle()
        async with server.connect() as guest:
            await guest.send_message("* game_1")
            await guest.send_message("*")
            assert await host.get_message() == "*"
            state = '{"board": [[0, 1], [2, 0]], "turn": 1}'
            await host.send_message(state)
            assert await guest.get_message() == state


async def test_frames_while_alone_are_dropped(server: Server) -> None:
    async with server.join("lonely", 0) as host:
        for n in range(5):
            await host.send_message(f"nobody hears {n}")
        await settle()
        async with server.join("lonely", 1) as guest:
            await settle()
            await host.send_message("first heard")
            assert await guest.get_message() == "first heard"


async def test_seat_conflict_4409_leaves_holder_undisturbed(server: Server) -> None:
    async with server.join("busy", 0) as holder, server.join("busy", 1) as peer:
        async with server.join("busy", 0) as intruder:
            code, reason = await closed_with(intruder)
        assert code == 4409
        assert reason == "seat 0 of this room is already taken"
        await holder.send_message("still here")
        assert await peer.get_message() == "still here"
        await peer.send_message("me too")
        assert await holder.get_message() == "me too"


@pytest.mark.parametrize(
    ("join", "problem"),
    [
        ("* room", "the join has no _SEAT"),
        ("* room_", "the seat must be 0 or 1"),
        ("* room_2", "the seat must be 0 or 1"),
        ("* room_01", "the seat must be 0 or 1"),
        ("* _0", "the room name is empty"),
        ("*room_0", 'the join must start with "* "'),
        ("*", 'the join must start with "* "'),
        ("hello", 'the join must start with "* "'),
        ("", 'the join must start with "* "'),
        (b"* room_0", "the join must be a text frame"),
        ("* bad\x07bell_0", "the room name has a control character"),
        ("* " + "x" * 129 + "_0", "the room name is over 128 characters"),
    ],
)
async def test_malformed_join_4400(server: Server, join: str | bytes, problem: str) -> None:
    async with server.connect() as ws:
        await ws.send_message(join)
        code, reason = await closed_with(ws)
    assert code == 4400
    assert reason == f"bad join: {problem}; expected * ROOM_SEAT with SEAT 0 or 1"


async def test_join_timeout_4408(start_server: StartServer) -> None:
    server = await start_server(join_timeout=0.2)
    async with server.connect() as ws:
        code, reason = await closed_with(ws)
    assert (code, reason) == (4408, "no join within 0.2 s")


async def test_rooms_and_namespaces_are_isolated(server: Server) -> None:
    async with (
        server.join("r", 0) as a0,
        server.join("r", 1) as a1,
        server.join("other", 1) as b1,
        server.join("r", 1, path="/ws/game-two") as c1,
        server.join("r", 0, path="/ws/game-two") as c0,
    ):
        await settle()
        await a0.send_message("for a1")
        await c0.send_message("for c1")
        await a1.send_message("for a0")
        assert await a1.get_message() == "for a1"
        assert await c1.get_message() == "for c1"
        assert await a0.get_message() == "for a0"
        # Nothing else reached anyone: a marker sent now through each room is
        # the next frame its peer receives; b1's room gets a peer only now.
        async with server.join("other", 0) as b0:
            await settle()
            for sender, receiver in ((a0, a1), (a1, a0), (b0, b1), (c0, c1), (c1, c0)):
                await sender.send_message("marker")
                assert await receiver.get_message() == "marker"
    assert len(server.app.rooms) == 0


@pytest.mark.parametrize("path", ["/ws/", "/ws/a/b", "/ws/" + "n" * 65, "/ws/bad%20name", "/x"])
async def test_other_websocket_paths_are_refused(server: Server, path: str) -> None:
    client = await RawClient.handshake(server, path)
    refused = await client.next_event()
    assert isinstance(refused, ws_events.RejectConnection)
    assert refused.status_code == 404
    await client.stream.aclose()


@pytest.mark.parametrize("path", ["/ws/a", "/ws/Game.v2_beta-1", "/ws/" + "n" * 64])
async def test_namespace_paths_are_accepted(server: Server, path: str) -> None:
    async with server.join("r", 0, path) as a, server.join("r", 1, path) as b:
        await settle()
        await a.send_message("ok")
        assert await b.get_message() == "ok"


@pytest.mark.parametrize("room", ["Friday game", "  spaced  ", "ゲーム", "a_b_c", "🎲🎲", "*"])
async def test_room_names_with_spaces_unicode_underscores(server: Server, room: str) -> None:
    async with server.join(room, 0) as a, server.join(room, 1) as b:
        await settle()
        assert server.app.rooms.get("default", room) is not None
        await a.send_message("hi")
        assert await b.get_message() == "hi"


async def test_5000_frames_in_order_no_loss(start_server: StartServer) -> None:
    server = await start_server(**NO_RATE_LIMIT)
    count = 5000
    async with server.join("flood", 0) as sender, server.join("flood", 1) as receiver:
        await settle()

        async def send_all() -> None:
            for n in range(count):
                await sender.send_message(str(n) if n % 2 else n.to_bytes(4, "big"))

        received: list[str | bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            for _ in range(count):
                received.append(await receiver.get_message())
    assert received == [str(n) if n % 2 else n.to_bytes(4, "big") for n in range(count)]


async def test_frames_sent_right_before_close_all_arrive(start_server: StartServer) -> None:
    server = await start_server(**NO_RATE_LIMIT)
    async with server.join("bye", 1) as receiver:
        async with server.join("bye", 0) as sender:
            await settle()
            for n in range(500):
                await sender.send_message(f"frame {n}")
            # Leaving the block closes the sender's websocket at once; the
            # receiver has not read anything yet.
        received = [await receiver.get_message() for _ in range(500)]
        assert received == [f"frame {n}" for n in range(500)]


async def test_close_queued_behind_held_back_frames_loses_nothing(
    start_server: StartServer,
) -> None:
    """The sender's close frame waits behind frames its reader is held back on
    (a slow receiver): every frame still arrives, then the seat is freed."""
    server = await start_server(outbox_size=2, **NO_RATE_LIMIT)
    count = 200
    async with server.join("held", 1) as receiver:
        sender = await RawClient.open(server)
        async with sender.stream, trio.open_nursery() as nursery:
            await sender.send("* held_0")
            await settle()

            async def send_then_close() -> None:
                for n in range(count):
                    await sender.send(n.to_bytes(4, "big") + bytes(65532))
                await sender._send(ws_events.CloseConnection(code=1000))

            nursery.start_soon(send_then_close)
            await settle()  # the sender is held back: nothing read by the receiver yet
            frames = [await receiver.get_message() for _ in range(count)]
        received = [int.from_bytes(frame[:4], "big") for frame in frames]
        assert received == list(range(count))
        await settle()
        room = server.app.rooms.get("default", "held")
        assert room is not None and room.holders[0] is None


async def test_frames_sent_right_before_tcp_reset_all_arrive(server: Server) -> None:
    async with server.join("reset", 1) as receiver:
        sender = await RawClient.open(server)
        await sender.send("* reset_0")
        await settle()
        for n in range(50):
            await sender.send(f"frame {n}")
        sender.reset()
        received = [await receiver.get_message() for _ in range(50)]
        assert received == [f"frame {n}" for n in range(50)]


async def test_abrupt_drop_frees_the_seat_for_a_newcomer(server: Server) -> None:
    async with server.join("drop", 1) as peer:
        dropped = await RawClient.open(server)
        await dropped.send("* drop_0")
        await settle()
        dropped.reset()
        await settle()
        room = server.app.rooms.get("default", "drop")
        assert room is not None
        assert room.holders[0] is None
        async with server.join("drop", 0) as newcomer:
            await settle()
            await peer.send_message("welcome")
            assert await newcomer.get_message() == "welcome"
            await newcomer.send_message("thanks")
            assert await peer.get_message() == "thanks"


async def test_newcomer_gets_only_frames_sent_after_it_joined(server: Server) -> None:
    async with server.join("seq", 0) as host:
        async with server.join("seq", 1) as first:
            await settle()
            await host.send_message("for first")
            assert await first.get_message() == "for first"
        await settle()
        await host.send_message("for nobody")
        await settle()
        async with server.join("seq", 1) as second:
            await settle()
            await host.send_message("for second")
            assert await second.get_message() == "for second"


async def test_oversized_frame_1009_peer_stays(start_server: StartServer) -> None:
    server = await start_server(max_message_size=1000)
    async with server.join("big", 0) as sender, server.join("big", 1) as peer:
        await settle()
        await sender.send_message(b"x" * 1000)
        assert await peer.get_message() == b"x" * 1000
        await sender.send_message("é" * 501)  # 1002 bytes of UTF-8
        code, reason = await closed_with(sender)
        assert (code, reason) == (1009, "message too big: the limit is 1000 bytes")
        await settle()
        async with server.join("big", 0) as again:
            await settle()
            await peer.send_message("still here")
            assert await again.get_message() == "still here"


async def test_oversized_join_1009(start_server: StartServer) -> None:
    server = await start_server(max_message_size=100)
    async with server.connect() as ws:
        await ws.send_message("* " + "r" * 100 + "_0")
        assert await closed_with(ws) == (1009, "message too big: the limit is 100 bytes")


async def test_sender_blocked_on_a_leaving_receiver_goes_on(start_server: StartServer) -> None:
    """A sender waiting for room in a receiver's full outbox is freed when the
    receiver leaves, and relays to the next holder of the seat (rules 5, 7, 9)."""
    outbox_size, count = 2, 600
    server = await start_server(outbox_size=outbox_size, **NO_RATE_LIMIT)
    async with server.join("slow", 0) as sender:
        slow = await RawClient.open(server)
        await slow.send("* slow_1")
        await settle()
        flood = Flood(sender, count)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood.run)
            # The slow receiver never reads: its outbox, the socket buffers and
            # Hypercorn's queue fill up; then the sender is back-pressured.
            await settle()
            assert not flood.done
            room = server.app.rooms.get("default", "slow")
            assert room is not None and room.holders[1] is not None
            assert room.holders[1].member.outbox.statistics().current_buffer_used == outbox_size
            slow.reset()
        # The sender was freed: every frame was read, those for the empty
        # seat dropped (rule 5).
        assert flood.done
        await settle()
        async with server.join("slow", 1) as fresh:
            await settle()
            await sender.send_message("after")
            assert await fresh.get_message() == "after"
    await settle()
    assert len(server.app.rooms) == 0


def relay_tasks() -> list[str]:
    """The names of this process's tasks, but the services' (:data:`SERVICE_TASKS`),
    which start in the background at any time after the server does."""
    return [name for name in task_names() if not name.endswith(SERVICE_TASKS)]


async def test_registry_empty_and_no_task_left(server: Server) -> None:
    baseline = relay_tasks()
    async with server.join("a", 0) as a, server.join("a", 1), server.join("b", 0):
        await settle()
        assert len(server.app.rooms) == 2
        assert any("duorelay" in name for name in task_names())
        await a.send_message("x")
    dropped = await RawClient.open(server)
    await dropped.send("* c_0")
    await settle()
    dropped.reset()
    await settle()
    gc.collect()
    assert len(server.app.rooms) == 0
    assert not server.app.sessions
    left = relay_tasks()
    for name in baseline:
        left.remove(name)
    # Hypercorn's ping task of a closed websocket sleeps out its interval
    # (PING_INTERVAL) before it notices the close, and holds its connection
    # task until then; nothing else may remain.
    pings = left.count("hypercorn.protocol.ws_stream.WSStream._send_pings")
    handlers = left.count("trio._highlevel_serve_listeners._run_handler")
    assert len(left) == pings + handlers
    assert handlers <= pings


async def test_raw_client_close_handshake_completes(server: Server) -> None:
    """The server answers a bare client's close frame and ends the session."""
    client = await RawClient.open(server)
    async with client.stream:
        await client.send("* closing_0")
        await client._send(ws_events.CloseConnection(code=1000))
        event = await client.next_event()
        assert isinstance(event, ws_events.CloseConnection)
        await settle()
        assert len(server.app.rooms) == 0
