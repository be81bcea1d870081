"""WMBP rooms whose host and clients are on different processes (PROTOCOLS.md section 2).

The host is on process A; clients join through process B (and A): codes,
joins, frames both ways in order, kick, leave, locked rooms, the host ending
the room, and the host's process killed.
"""

from __future__ import annotations

import re
import signal
from contextlib import AsyncExitStack

import trio
import wsproto.events as ws_events
from trio_websocket import WebSocketConnection

from conftest import RawClient, closed_with, http_get
from scaleout.conftest import RedisServer, duorelays, eventually
from test_wmbp import hosting, player, state


async def test_clients_on_other_processes_play_in_one_room(redis: RedisServer) -> None:
    async with duorelays(redis, 2) as [(_, server_a), (_, server_b)], hosting(server_a) as host:
        code = await host.prepare(max_players=3, name="Friday quiz ✓")
        # The code is known on every process.
        assert (await http_get(server_b, f"/{code}"))[::2] == (200, "Friday quiz ✓".encode())
        async with (
            player(server_b, host, code, 1) as far,
            player(server_a, host, code, 2) as near,
        ):
            await far.send_message("buzz")
            await far.send_message(bytes(range(256)))
            await far.send_message(b"")
            assert await host.recv() == {"cmd": "from_str", "from": 1, "data": "buzz"}
            assert await host.recv() == {"cmd": "from", "from": 1, "data": list(range(256))}
            assert await host.recv() == {"cmd": "from", "from": 1, "data": []}
            await host.send({"cmd": "to", "to": [1], "data": b"\x00\xffbytes"})
            await host.send({"cmd": "to_str", "to": [], "data": "everyone"})
            assert await far.get_message() == b"\x00\xffbytes"
            assert await far.get_message() == "everyone"
            assert await near.get_message() == "everyone"

            # 2,000 frames each way, in order (read while sending: a host that
            # does not read is closed with 4430, rule 9)
            async def client_sends() -> None:
                for i in range(2000):
                    await far.send_message(f"f{i}")

            async def host_sends() -> None:
                for i in range(2000):
                    await host.send({"cmd": "to_str", "to": [1], "data": f"h{i}"})

            async def host_reads() -> None:
                for i in range(2000):
                    assert await host.recv() == {"cmd": "from_str", "from": 1, "data": f"f{i}"}

            async def client_reads() -> None:
                for i in range(2000):
                    assert await far.get_message() == f"h{i}"

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for task in (client_sends, host_sends, host_reads, client_reads):
                        nursery.start_soon(task)
            # The room is full (3 places, 2 taken): a third joins from B, a fourth is refused.
            async with player(server_b, host, code, 3):
                async with server_b.connect(f"/{code}") as refused:
                    assert await closed_with(refused) == (4423, "the room is full or has started")
                assert await host.recv() == state(
                    [1, 2, 3], max_players=3, accept=False, name="Friday quiz ✓"
                )
            assert await host.recv() == {"cmd": "player_left", "player": 3}
            assert (await host.recv())["players"] == [1, 2]
            await far.aclose()
            assert await host.recv() == {"cmd": "player_left", "player": 1}
            assert (await host.recv())["players"] == [2]


async def test_kick_and_host_end_across_processes(redis: RedisServer) -> None:
    async with duorelays(redis, 2) as [(_, server_a), (proc_b, server_b)]:
        async with hosting(server_a) as host:
            code = await host.prepare()
            async with (
                player(server_b, host, code, 1) as kicked,
                player(server_b, host, code, 2) as two,
            ):
                await host.send({"cmd": "to_str", "to": [1], "data": "last words"})
                await host.send({"cmd": "kick", "player": 1})
                assert await host.recv() == state([2])
                assert await kicked.get_message() == "last words"
                assert await closed_with(kicked) == (1000, "kicked")
                assert await host.recv() == {"cmd": "player_left", "player": 1}
                assert await host.recv() == state([2])
                await two.send_message("still in")
                assert await host.recv() == {"cmd": "from_str", "from": 2, "data": "still in"}
                await host.send({"cmd": "to_str", "to": [], "data": "bye"})
                await host.send({"cmd": "stop"})
                assert await two.get_message() == "bye"
                assert await closed_with(two) == (4410, "the host closed the room")
        # The code is free everywhere once the host is gone.
        await proc_b.read_until(re.compile(rb"player=2 code=4410"))
        async with server_b.connect(f"/{code}") as late:
            assert await closed_with(late) == (4404, "no room with this code")
        async with server_a.connect(f"/{code}") as late:
            assert await closed_with(late) == (4404, "no room with this code")


async def test_unknown_code_on_another_process_4404(redis: RedisServer) -> None:
    async with duorelays(redis, 2) as [_, (_, server_b)]:
        async with server_b.connect("/ZZZZ") as ws:
            assert await closed_with(ws) == (4404, "no room with this code")
        assert (await http_get(server_b, "/ZZZZ"))[::2] == (404, b"Game not found")


async def test_host_process_killed_clients_get_4410(redis: RedisServer) -> None:
    async with (
        duorelays(redis, 2) as [(proc_a, server_a), (_, server_b)],
        redis.client() as client,
        hosting(server_a) as host,
    ):
        code = await host.prepare()
        async with player(server_b, host, code, 1) as orphan:
            proc_a.process.send_signal(signal.SIGKILL)
            await proc_a.process.wait()
            # Redis drops the dead process's subscriptions once it sees its socket
            # closed.
            channel = f"duorelay:wmbp:{code}"

            async def unheard() -> bool:
                return (await client.pubsub_numsub(channel))[channel.encode()] == 0

            await eventually(unheard)
            # The next frame finds nobody listening for the room: 4410.
            await orphan.send_message("anyone?")
            assert await closed_with(orphan) == (4410, "the host closed the room")


async def test_host_broadcasting_fast_to_many_remote_clients(redis: RedisServer) -> None:
    # 60 clients on another process, 100 broadcasts sent at once: 6,000 messages,
    # more than the publish queue holds. The host waits for room (back-pressure);
    # no client that keeps reading is dropped.
    clients, broadcasts = 60, 100
    async with (
        duorelays(redis, 2) as [(_, server_a), (_, server_b)],
        hosting(server_a) as host,
        AsyncExitStack() as stack,
    ):
        code = await host.prepare(max_players=clients)
        players = [
            await stack.enter_async_context(player(server_b, host, code, i + 1))
            for i in range(clients)
        ]
        counts = [0] * clients
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:

                async def read(index: int) -> None:
                    for i in range(broadcasts):
                        assert await players[index].get_message() == f"b{i}"
                        counts[index] += 1

                for index in range(clients):
                    nursery.start_soon(read, index)
                for i in range(broadcasts):
                    await host.send({"cmd": "to_str", "to": [], "data": f"b{i}"})
        assert counts == [broadcasts] * clients
        # Nobody left: the host's next message is the answer to this kick.
        await host.send({"cmd": "kick", "player": 1})
        assert (await host.recv())["players"] == list(range(2, clients + 1))
        assert await closed_with(players[0]) == (1000, "kicked")
        # Another burst, then the host stops while the queue is full: every client
        # gets the burst, then 4410 (close messages are never refused for a full queue).
        for i in range(broadcasts):
            await host.send({"cmd": "to_str", "to": [], "data": f"c{i}"})
        await host.send({"cmd": "stop"})

        async def last_burst_then_4410(ws: WebSocketConnection) -> None:
            for i in range(broadcasts):
                assert await ws.get_message() == f"c{i}"
            assert await closed_with(ws) == (4410, "the host closed the room")

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for ws in players[1:]:
                    nursery.start_soon(last_burst_then_4410, ws)


async def test_local_client_is_back_pressured_by_a_host_with_an_inbox(redis: RedisServer) -> None:
    """With a shared backplane the host receives through an inbox (remote
    clients cannot wait); a client on the host's own process still waits for
    room (rule 9) instead of filling the inbox: 1,000 frames in one TCP write
    reach the host in order, and a remote client's frames still get through."""
    count = 1000
    frames = [n.to_bytes(2, "big") + bytes(8) for n in range(count)]
    small = {"DUORELAY_OUTBOX_SIZE": "4", "DUORELAY_MAX_BURST": "8"}  # an inbox of 8 frames
    async with (
        duorelays(redis, 2, **small) as [(_, server_a), (_, server_b)],
        hosting(server_a) as host,
    ):
        code = await host.prepare()
        near = await RawClient.open(server_a, f"/{code}")
        assert await host.recv() == {"cmd": "player_joined", "player": 1}
        assert await host.recv() == state([1])
        async with near.stream, player(server_b, host, code, 2) as far:
            burst = b"".join(near.ws.send(ws_events.BytesMessage(frame)) for frame in frames)
            await near.stream.send_all(burst)
            await far.send_message("far away")
            with trio.fail_after(60):
                got = [await host.recv() for _ in range(count + 1)]
            assert [m for m in got if m["from"] == 1] == [
                {"cmd": "from", "from": 1, "data": list(frame)} for frame in frames
            ]
            assert {"cmd": "from_str", "from": 2, "data": "far away"} in got
            await host.send({"cmd": "to_str", "to": [], "data": "still here"})
            assert await far.get_message() == "still here"
            event = await near.next_event()
            assert isinstance(event, ws_events.TextMessage) and event.data == "still here"
