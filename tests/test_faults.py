"""Faults: dead peers, slow receivers, floods and a crowd of misbehaving clients.

Timeouts here are short settings (fractions of a second) and every wait is on
an event: a frame, a close, or a line the server logs.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from contextlib import suppress

import pytest
import trio
import wsproto.events as ws_events

from conftest import (
    Flood,
    LogWatch,
    RawClient,
    Server,
    StartServer,
    closed_with,
    leftover_tasks,
    settle,
    tasks_in,
)

NO_RATE_LIMIT = {"max_rate": 1e9, "max_burst": 10**9}
QUICK_DEAD_PEERS = {"ping_interval": 0.05, "idle_timeout": 0.3, "tcp_user_timeout": 0.5}


async def test_client_that_stops_answering_pings_is_dropped(
    start_server: StartServer, server_log: LogWatch
) -> None:
    server = await start_server(**QUICK_DEAD_PEERS)
    async with server.join("ping", 1) as alive:  # trio-websocket answers pings
        silent = await RawClient.open(server)  # RawClient never answers them
        async with silent.stream:
            await silent.send("* ping_0")
            event = await silent.next_event()  # the server dropped the connection
            assert isinstance(event, ws_events.CloseConnection)
            assert event.code == 1006  # no close frame: the TCP connection ended
        closed = await server_log.wait_for("closed", seat=0)
        assert closed.reason == "client went away"
        # The live peer was not disturbed and the seat is free again.
        async with server.join("ping", 0) as newcomer:
            await settle()
            await alive.send_message("hi")
            assert await newcomer.get_message() == "hi"


async def test_receiver_that_stops_reading_is_dropped_and_frees_its_sender(
    start_server: StartServer, server_log: LogWatch
) -> None:
    server = await start_server(outbox_size=4, **QUICK_DEAD_PEERS, **NO_RATE_LIMIT)
    async with server.join("frozen", 0) as sender:
        frozen = await RawClient.open(server)  # never reads again: a frozen tab
        async with frozen.stream:
            await frozen.send("* frozen_1")
            await settle()
            flood = Flood(sender)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood.run)
                # The frozen receiver is dropped by the idle timeout (it sends
                # no pongs); its seat is freed and the sender goes on.
                await server_log.wait_for("closed", seat=1)
            assert flood.done
        async with server.join("frozen", 1) as fresh:
            await settle()
            await sender.send_message("after")
            assert await fresh.get_message() == "after"


async def test_sender_held_back_by_a_frozen_receiver_loses_its_seat_when_it_resets(
    start_server: StartServer, server_log: LogWatch
) -> None:
    """A sender blocked on a receiver that stopped reading cannot see its own
    reset (its socket is not read); once the frozen receiver is dropped by the
    idle timeout (rule 10), the sender's reader goes on, sees the reset and
    frees seat 0 (rules 7, 9)."""
    server = await start_server(outbox_size=2, **QUICK_DEAD_PEERS, **NO_RATE_LIMIT)
    frozen = await RawClient.open(server)
    sender = await RawClient.open(server)
    async with frozen.stream:
        await frozen.send("* stuck_1")
        await sender.send("* stuck_0")
        await settle()
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    for _ in range(400):
                        await sender.send(bytes(65536))

            nursery.start_soon(flood)
            await settle()  # the sender is held back
            sender.reset()
        await server_log.wait_for("closed", seat=1)
        await server_log.wait_for("closed", seat=0)
    async with server.join("stuck", 0) as again:
        await again.send_message("mine again")
        await settle()
        room = server.app.rooms.get("default", "stuck")
        assert room is not None and room.holders[0] is not None


async def test_client_flooding_after_its_close_leaves_nothing_stuck(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the server closed a connection (here: a bad join) it reads until the
    client is quiet, so Hypercorn's reader never blocks on a queue nobody reads."""
    monkeypatch.setattr("duorelay.core.session.CLOSE_TIMEOUT", 0.2)
    client = await RawClient.open(server)
    async with client.stream:
        await client.send("not a join")
        for _ in range(20_000):  # reading these takes the server longer than 0.2 s
            await client.send(bytes(1024))
        closed = await server_log.wait_for("closed", code=4400)
        assert closed.reason.startswith("bad join")
        await settle()
        assert not tasks_in("_handle_events")
        client.reset()
    await settle()
    assert not tasks_in("_handle_events")
    assert not server.app.sessions


async def test_flood_into_a_receiver_that_does_not_read_stays_bounded(
    start_server: StartServer,
) -> None:
    """Rule 9: frames buffered for one receiver stay at OUTBOX_SIZE plus the two
    in hand (the sender's reader's and the receiver's writer's), however fast
    the sender is; then the receiver leaves and the sender is free again."""
    outbox_size = 8
    server = await start_server(outbox_size=outbox_size, **NO_RATE_LIMIT)
    async with server.join("flood", 0) as sender:
        stuck = await RawClient.open(server)
        async with stuck.stream:
            await stuck.send("* flood_1")
            await settle()
            flood = Flood(sender)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood.run)
                await settle()  # everyone blocked: the sender is back-pressured
                assert not flood.done
                by_seat = {s.where.get("seat"): s for s in server.app.sessions}
                reader, writer = by_seat[0], by_seat[1]
                waiting = reader.frames_in - 1 - writer.frames_out  # minus the join
                assert writer.outbox.statistics().current_buffer_used == outbox_size
                assert waiting <= outbox_size + 2
                stuck.reset()
            assert flood.done


async def test_outbox_is_bounded_in_bytes(start_server: StartServer) -> None:
    """Invariant 5: what waits for a receiver that stopped reading stays within
    OUTBOX_BYTES plus one frame, however large the frames; the sender is
    back-pressured. (OUTBOX_SIZE alone would let 64 frames of 256 KiB wait.)"""
    frame, outbox_bytes = 256 * 1024, 600 * 1024
    server = await start_server(outbox_bytes=outbox_bytes, **NO_RATE_LIMIT)
    async with server.join("bytes", 0) as sender:
        stuck = await RawClient.open(server)
        async with stuck.stream:
            await stuck.send("* bytes_1")
            await settle()

            async def flood() -> None:
                for _ in range(100):
                    await sender.send_message(bytes(frame))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                await settle()  # everyone blocked: the sender is back-pressured
                by_seat = {s.where.get("seat"): s for s in server.app.sessions}
                reader, writer = by_seat[0], by_seat[1]
                statistics = writer.outbox.statistics()
                assert statistics.tasks_waiting_send == 1  # the sender's reader
                assert 0 < statistics.current_bytes <= statistics.peak_bytes
                assert statistics.peak_bytes <= outbox_bytes + frame + 64  # + object header
                # In the server's hands: the outbox (2 frames fit in 600 KiB),
                # the one the sender's reader waits with, the one being written.
                assert reader.frames_in - 1 - writer.frames_out <= 2 + 2
                stuck.reset()


async def test_frame_larger_than_the_outbox_bytes_passes_alone(start_server: StartServer) -> None:
    """A frame over OUTBOX_BYTES still goes through when nothing else waits."""
    server = await start_server(outbox_bytes=1000, **NO_RATE_LIMIT)
    async with server.join("big", 0) as sender, server.join("big", 1) as receiver:
        await settle()
        frames = [n.to_bytes(4, "big") + bytes(100_000) for n in range(20)] + ["small"]
        async with trio.open_nursery() as nursery:

            async def send_all() -> None:
                for frame in frames:
                    await sender.send_message(frame)

            nursery.start_soon(send_all)
            assert [await receiver.get_message() for _ in frames] == frames


async def test_chaos_leaves_nothing_behind(start_server: StartServer) -> None:
    """Many clients at once: good pairs, resets, non-readers, garbage, oversize.

    Between two live, well-behaved peers every frame arrives in order; at the
    end the registry is empty, no session or duorelay task is left, and the
    memory allocated by duorelay's code is back near where it started.
    """
    server = await start_server(max_message_size=4096, **NO_RATE_LIMIT)
    await _chaos_round(server, random.Random(1))  # warm-up: imports, caches
    await settle()
    gc.collect()
    tracemalloc.start()
    try:
        before = _duorelay_memory()
        await _chaos_round(server, random.Random(2))
        await settle()
        gc.collect()
        after = _duorelay_memory()
    finally:
        tracemalloc.stop()
    assert len(server.app.rooms) == 0
    assert not server.app.sessions
    assert not leftover_tasks()
    assert after - before < 64 * 1024, (before, after)


async def _chaos_round(server: Server, rng: random.Random) -> None:
    async with trio.open_nursery() as nursery:
        for n in range(12):
            nursery.start_soon(_good_pair, server, f"good {n}", rng.randrange(50, 300))
        for n in range(8):
            nursery.start_soon(_resetter, server, f"reset {n}", rng.randrange(0, 20))
        for n in range(6):
            nursery.start_soon(_sender_to_non_reader, server, f"stuck {n}")
        for garbage in (b"\x00\xff", "hello", "* no-seat", "* r_7", "*", ""):
            nursery.start_soon(_garbage, server, garbage)
        for n in range(6):
            nursery.start_soon(_oversize, server, f"big {n}")


async def _good_pair(server: Server, room: str, count: int) -> None:
    async with server.join(room, 0) as a, server.join(room, 1) as b:
        await settle()

        async def exchange(me: object, other: object, tag: str) -> None:
            async def send() -> None:
                for n in range(count):
                    await me.send_message(f"{tag}{n}")  # type: ignore[attr-defined]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                got = [await other.get_message() for _ in range(count)]  # type: ignore[attr-defined]
            assert got == [f"{tag}{n}" for n in range(count)]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(exchange, a, b, "a")
            nursery.start_soon(exchange, b, a, "b")


async def _resetter(server: Server, room: str, frames: int) -> None:
    client = await RawClient.open(server)
    await client.send(f"* {room}_0")
    for n in range(frames):
        await client.send(f"frame {n}")
    client.reset()


async def _sender_to_non_reader(server: Server, room: str) -> None:
    stuck = await RawClient.open(server)
    await stuck.send(f"* {room}_1")
    async with server.join(room, 0) as sender:
        await settle()
        for _ in range(20):
            await sender.send_message(b"y" * 2048)
    stuck.reset()


async def _garbage(server: Server, frame: str | bytes) -> None:
    async with server.connect() as ws:
        await ws.send_message(frame)
        assert (await closed_with(ws))[0] == 4400


async def _oversize(server: Server, room: str) -> None:
    async with server.join(room, 0) as ws:
        await ws.send_message(b"z" * 5000)
        assert (await closed_with(ws))[0] == 1009


def _duorelay_memory() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/duorelay/*")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))
