"""Kamon rooms across duorelay processes sharing one Redis (PROTOCOLS.md section 1).

Every rule of the two-seat relay, with the two seats on different processes:
relaying both ways in order and byte-exact, the seat conflict (4409), the
absent-peer drop, leases freeing the seats of a killed process, Redis lost
and back (1013, then recovery), a slow receiver across processes (4430).
"""

from __future__ import annotations

import json
import re
import signal

import coredis
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from conftest import DUORELAY, Process, Server, closed_with, http_get, server_process
from scaleout.conftest import RedisServer, duorelays, eventually, joined
from test_wmbp import hosting

FRAMES = 10_000


async def health(server: Server) -> dict[str, object]:
    status, _, body = await http_get(server, "/healthz")
    assert status == 200
    result: dict[str, object] = json.loads(body)
    return result


async def test_seats_on_two_processes_relay_both_ways_in_order(redis: RedisServer) -> None:
    async with (
        duorelays(redis, 2) as [(proc_a, server_a), (proc_b, server_b)],
        server_a.join("far", 0) as a,
        server_b.join("far", 1) as b,
    ):
        await proc_a.read_next(joined("far", 0))
        await proc_b.read_next(joined("far", 1))

        async def send(ws: WebSocketConnection, name: str) -> None:
            for i in range(FRAMES):
                await ws.send_message(numbered(name, i))

        async def expect(ws: WebSocketConnection, name: str) -> None:
            for i in range(FRAMES):
                assert await ws.get_message() == numbered(name, i)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, a, "a")
                nursery.start_soon(send, b, "b")
                nursery.start_soon(expect, b, "a")
                nursery.start_soon(expect, a, "b")
        # empty frames and text/binary distinction survive the trip
        for frame in ("", b"", "é\u2603", bytes(range(256))):
            await a.send_message(frame)
            assert await b.get_message() == frame


def numbered(name: str, i: int) -> str | bytes:
    """Frame ``i`` of a stream: text and binary in turn."""
    return f"{name}{i}" if i % 2 else f"{name}{i}".encode()


async def test_four_processes_and_local_pairs_skip_redis(redis: RedisServer) -> None:
    async with duorelays(redis, 4) as procs, redis.client() as client:
        rooms = [(f"r{i}", procs[i], procs[(i + 1) % 4]) for i in range(4)]
        async with trio.open_nursery() as nursery:
            for room, (proc_0, server_0), (proc_1, server_1) in rooms:

                async def play(
                    room: str = room,
                    s0: Server = server_0,
                    s1: Server = server_1,
                    p0: Process = proc_0,
                    p1: Process = proc_1,
                ) -> None:
                    async with s0.join(room, 0) as a, s1.join(room, 1) as b:
                        await p0.read_next(joined(room, 0))
                        await p1.read_next(joined(room, 1))
                        for i in range(500):
                            await a.send_message(f"{room}:{i}")
                            await b.send_message(f"{room}:{i}".encode())
                        for i in range(500):
                            assert await b.get_message() == f"{room}:{i}"
                            assert await a.get_message() == f"{room}:{i}".encode()

                nursery.start_soon(play)

        # Two seats on one process: frames go from outbox to outbox, not through Redis.
        published = await _publish_calls(client)
        proc, server = procs[0]
        async with server.join("near", 0) as a, server.join("near", 1) as b:
            await proc.read_next(joined("near", 0))
            await proc.read_next(joined("near", 1))
            for i in range(1000):
                await a.send_message(f"n{i}")
            for i in range(1000):
                assert await b.get_message() == f"n{i}"
        assert await _publish_calls(client) == published


async def _publish_calls(client: coredis.Redis[bytes]) -> int:
    info = await client.info("commandstats")
    stats = info.get("cmdstat_publish", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


async def test_seat_conflict_across_processes_one_winner(redis: RedisServer) -> None:
    async with duorelays(redis, 2) as [(proc_a, server_a), (proc_b, server_b)]:
        async with server_a.join("held", 0) as holder:
            await proc_a.read_next(joined("held", 0))
            async with server_b.join("held", 0) as late:
                assert await closed_with(late) == (4409, "seat 0 of this room is already taken")
            # The holder is undisturbed and still relays to a peer on the other process.
            async with server_b.join("held", 1) as peer:
                await proc_b.read_next(joined("held", 1))
                await holder.send_message("still here")
                assert await peer.get_message() == "still here"

        # Two joins of one seat at once on two processes: exactly one wins.
        for attempt in range(10):
            room = f"race{attempt}"
            outcomes: list[str] = []
            async with server_a.join(room, 0) as one, server_b.join(room, 0) as two:
                with trio.fail_after(10):
                    async with trio.open_nursery() as nursery:
                        for ws in (one, two):

                            async def outcome(
                                ws: WebSocketConnection = ws, outcomes: list[str] = outcomes
                            ) -> None:
                                code, _ = await closed_with(ws)
                                outcomes.append(str(code))
                                nursery.cancel_scope.cancel()

                            nursery.start_soon(outcome)
                assert outcomes == ["4409"]
                # The winner holds the seat: a peer on process A hears it.
                async with server_a.join(room, 1) as peer:
                    await proc_a.read_next(joined(room, 1))
                    for ws in (one, two):
                        if ws.closed is None:
                            await ws.send_message("winner")
                    with trio.fail_after(10):
                        assert await peer.get_message() == "winner"


async def test_absent_peer_drop_across_processes(redis: RedisServer) -> None:
    async with (
        duorelays(redis, 2) as [(proc_a, server_a), (proc_b, server_b)],
        server_a.join("lone", 0) as a,
    ):
        await proc_a.read_next(joined("lone", 0))
        for i in range(50):
            await a.send_message(f"before {i}")  # nobody holds seat 1: dropped
        # Rule 7 counts from when the server reads a frame: wait until it has.
        await dropped(server_a, "absent_peer", 50)
        async with server_b.join("lone", 1) as b:
            await proc_b.read_next(joined("lone", 1))
            await a.send_message("after")
            assert await b.get_message() == "after"
        # seat 1 left: dropped again; a newcomer gets only what follows its join.
        # A frame sent just after b left may still reach process B (its
        # unsubscribe is queued) and is dropped there: count both processes.
        for i in range(50):
            await a.send_message(f"between {i}")
        await dropped([server_a, server_b], "absent_peer", 100)
        async with server_b.join("lone", 1) as b2:
            await proc_b.read_next(joined("lone", 1))
            await a.send_message("again")
            assert await b2.get_message() == "again"


async def test_sigkill_frees_the_seats_within_the_lease(redis: RedisServer) -> None:
    lease = 1.0
    async with (
        duorelays(redis, 2, DUORELAY_REDIS_LEASE=str(lease)) as [
            (proc_a, server_a),
            (proc_b, server_b),
        ],
        redis.client() as client,
    ):
        async with server_a.join("doomed", 0), server_a.join("doomed", 1):
            await proc_a.read_next(joined("doomed", 1))
            async with server_b.join("doomed", 0) as refused:
                assert (await closed_with(refused))[0] == 4409
            async with client.pubsub(channels=["__keyevent@0__:expired"]) as expiries:
                await expiries.get_message()  # the subscribe confirmation
                killed = trio.current_time()
                proc_a.process.send_signal(signal.SIGKILL)
                with trio.fail_after(lease * 2):
                    expired = set()
                    while len(expired) < 2:
                        message = await expiries.get_message()
                        assert message is not None
                        expired.add(message["data"])
                freed_after = trio.current_time() - killed
        assert expired == {b"duorelay:seat:default:0:doomed", b"duorelay:seat:default:1:doomed"}
        assert freed_after <= lease + 0.5
        async with server_b.join("doomed", 0) as a, server_b.join("doomed", 1) as b:
            await proc_b.read_next(joined("doomed", 1))
            await a.send_message("reborn")
            assert await b.get_message() == "reborn"


async def test_redis_lost_and_back(redis: RedisServer) -> None:
    async with (
        duorelays(redis, 2) as [(proc_a, server_a), (proc_b, server_b)],
        server_a.join("split", 0) as far_a,
        server_b.join("split", 1) as far_b,
        server_a.join("local", 0) as near_0,
        server_a.join("local", 1) as near_1,
    ):
        for proc, room, seat in ((proc_a, "split", 0), (proc_b, "split", 1)):
            await proc.read_next(joined(room, seat))
        await proc_a.read_next(joined("local", 0))
        await proc_a.read_next(joined("local", 1))
        await far_a.send_message("over redis")
        assert await far_b.get_message() == "over redis"

        await redis.stop()
        # Seats whose peer is on another process end: 1013, try again later.
        unavailable = (1013, "backplane unavailable: try again later")
        assert await closed_with(far_a) == unavailable
        assert await closed_with(far_b) == unavailable
        # A pair on one process goes on without Redis.
        await near_0.send_message("no redis needed")
        assert await near_1.get_message() == "no redis needed"
        backplane = (await health(server_a))["backplane"]
        assert isinstance(backplane, dict)
        assert backplane["kind"] == "redis"
        assert backplane["available"] is False
        async with server_b.join("new", 0) as refused:
            assert await closed_with(refused) == unavailable

        await redis.start()  # same port, empty: every key is gone
        for proc in (proc_a, proc_b):
            await proc.read_next(re.compile(rb"backplane connected to "))
        assert (await health(server_a))["backplane"] == {"kind": "redis", "available": True}
        # The pair kept its seats: they are back in Redis, so others get 4409.
        async with server_b.join("local", 1) as intruder:
            assert (await closed_with(intruder))[0] == 4409
        await near_1.send_message("still paired")
        assert await near_0.get_message() == "still paired"
        # The players that were closed come back and play across processes again.
        async with server_a.join("split", 0) as a, server_b.join("split", 1) as b:
            await proc_a.read_next(joined("split", 0))
            await proc_b.read_next(joined("split", 1))
            await b.send_message("recovered")
            assert await a.get_message() == "recovered"


async def test_slow_receiver_on_another_process_4430(redis: RedisServer) -> None:
    async with duorelays(redis, 2, DUORELAY_OUTBOX_SIZE="4", DUORELAY_MAX_BURST="8") as procs:
        (proc_a, server_a), (proc_b, server_b) = procs
        async with server_a.join("slow", 0) as sender:
            await proc_a.read_next(joined("slow", 0))
            async with server_b.join("slow", 1) as receiver:
                await proc_b.read_next(joined("slow", 1))
                # The receiver does not read: 64 KiB frames fill the TCP buffers, then
                # its outbox, then its inbox; a frame arriving from Redis then finds
                # the inbox full.
                # There is no back-pressure across processes: the receiver is closed.
                payload = b"x" * 65536
                with trio.fail_after(30):
                    while not await dropped(server_b, "peer_left", 1, wait=False):
                        for _ in range(20):
                            await sender.send_message(payload)
                    while True:  # the receiver reads again: queued frames, then 4430
                        try:
                            assert await receiver.get_message() == payload
                        except ConnectionClosed as closed:
                            assert closed.reason is not None
                            assert closed.reason.code == 4430
                            assert closed.reason.reason == "too slow: the inbox is full"
                            break
            # The sender was not disturbed: it relays to the next holder of seat 1.
            async with server_b.join("slow", 1) as fresh:
                await proc_b.read_next(joined("slow", 1))
                await sender.send_message("after")
                with trio.fail_after(10):
                    while (frame := await fresh.get_message()) != "after":
                        assert frame == payload  # sent before the join, still in flight


async def dropped(
    servers: Server | list[Server], reason: str, count: int, *, wait: bool = True
) -> bool:
    """Whether ``servers`` dropped ``count`` frames for ``reason`` between them
    (their /metrics); with ``wait``, waits until they have."""
    servers = servers if isinstance(servers, list) else [servers]

    async def reached() -> bool:
        total = 0.0
        for server in servers:
            _, _, body = await http_get(server, "/metrics")
            found = re.search(
                rf'duorelay_frames_dropped_total{{reason="{reason}"}} (\S+)'.encode(), body
            )
            assert found is not None, body
            total += float(found.group(1))
        return total >= count

    if wait:
        await eventually(reached)
        return True
    return await reached()


async def test_redis_down_at_start_then_up(redis: RedisServer) -> None:
    await redis.stop()
    # Joins wait for the backplane 0.2 s here (DUORELAY_BACKPLANE_WAIT), then get 1013.
    env = {"DUORELAY_BACKPLANE_WAIT": "0.2"}
    async with server_process(*DUORELAY, DUORELAY_REDIS_URL=redis.url, **env) as (proc, server):
        # The server starts without Redis, says so, and refuses joins with 1013.
        await proc.read_until(re.compile(rb"backplane unavailable: "))
        backplane = (await health(server))["backplane"]
        assert isinstance(backplane, dict)
        assert (backplane["kind"], backplane["available"]) == ("redis", False)
        assert "Connect" in str(backplane["error"]) or "refused" in str(backplane["error"])
        async with server.join("early", 0) as early:
            assert await closed_with(early) == (1013, "backplane unavailable: try again later")
        # A WMBP host gets the error message first, then the close (its inbox is
        # flushed before the close frame).
        async with hosting(server) as host:
            await host.send({"cmd": "prepare", "max_players": 4, "name": "quiz"})
            assert await host.recv() == {
                "cmd": "error",
                "reason": "backplane unavailable: try again later",
            }
            assert await closed_with(host.ws) == (1013, "backplane unavailable: try again later")
        # Redis comes up: the server connects by itself.
        await redis.start()
        await proc.read_until(re.compile(rb"backplane connected to "))
        async with server.join("early", 0) as a, server.join("early", 1) as b:
            await proc.read_next(joined("early", 1))
            await a.send_message("now")
            assert await b.get_message() == "now"


async def test_sigterm_frees_seats_at_once(redis: RedisServer) -> None:
    # A lease far longer than the test: only an explicit release frees the seat.
    env = {"DUORELAY_REDIS_LEASE": "600"}
    async with duorelays(redis, 2, **env) as [(proc_a, server_a), (proc_b, server_b)]:
        async with server_a.join("moving", 0) as leaving:
            await proc_a.read_next(joined("moving", 0))
            proc_a.process.send_signal(signal.SIGTERM)
            assert await closed_with(leaving) == (1001, "server shutting down")
            with trio.fail_after(10):
                await proc_a.process.wait()
        assert proc_a.process.returncode == 0
        assert b"Traceback" not in proc_a.stderr
        # The player reconnects to the other process and gets its seat back.
        async with server_b.join("moving", 0) as back, server_b.join("moving", 1) as peer:
            await proc_b.read_next(joined("moving", 1))
            await back.send_message("back")
            assert await peer.get_message() == "back"


async def test_refused_newcomer_gets_none_of_the_holders_frames(redis: RedisServer) -> None:
    # The newcomer listens on the seat's address before it asks for the lease:
    # while it waits for the answer (4409), frames for the holder must not reach it.
    async with (
        duorelays(redis, 3) as [(proc_a, server_a), (proc_b, server_b), (_, server_c)],
        server_a.join("busy", 1) as holder,
        server_b.join("busy", 0) as sender,
    ):
        await proc_a.read_next(joined("busy", 1))
        await proc_b.read_next(joined("busy", 0))
        received: list[int] = []
        async with trio.open_nursery() as nursery:

            async def stream() -> None:
                for i in range(1_000_000):
                    await sender.send_message(f"for the holder {i}")

            async def drain() -> None:
                while True:
                    await holder.get_message()

            nursery.start_soon(stream)
            nursery.start_soon(drain)
            for _ in range(20):
                async with server_c.join("busy", 1) as refused:
                    frames = 0
                    try:
                        while True:
                            await refused.get_message()
                            frames += 1
                    except ConnectionClosed as closed:
                        assert closed.reason is not None
                        assert closed.reason.code == 4409
                    received.append(frames)
            nursery.cancel_scope.cancel()
        assert received == [0] * 20
