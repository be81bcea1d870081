"""The backplane's own life: joins while it connects, its bounds, its bugs in ``/healthz``.

Joins that arrive while the backplane connects wait for it
(``DUORELAY_BACKPLANE_WAIT``); control messages have a bound of their own
(:data:`~duorelay.cluster.publisher.MAX_CONTROL`); a bug in a backplane task
makes ``/healthz`` say ``degraded`` and is counted.
"""

from __future__ import annotations

import json
import re

import pytest
import trio

import duorelay.cluster.publisher
import duorelay.cluster.redis
import duorelay.relay.kamon
from conftest import DUORELAY, LogWatch, Server, StartServer, closed_with, http_get, server_process
from duorelay.cluster.publisher import MAX_CONTROL, Publisher
from duorelay.cluster.redis import RedisBackplane
from duorelay.core.backplane import BackplaneUnavailable
from duorelay.observability import Stats
from duorelay.protocols.cluster import Frame, encode
from scaleout.conftest import FAST, RedisServer, duorelays, eventually, joined
from test_wmbp import hosting

UNAVAILABLE = (1013, "backplane unavailable: try again later")


async def metric(server: Server, name: str) -> float:
    """The value of metric ``name`` (with its labels, as exposed) on ``/metrics``."""
    _, _, body = await http_get(server, "/metrics")
    found = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.MULTILINE)
    assert found is not None, body.decode()
    return float(found.group(1))


async def waiting(server: Server, count: int) -> None:
    """Wait until ``count`` joins wait for the backplane on ``server``."""

    async def reached() -> bool:
        return await metric(server, "duorelay_backplane_waiting") == count

    await eventually(reached)


async def health(server: Server) -> dict[str, object]:
    status, _, body = await http_get(server, "/healthz")
    assert status == 200
    result: dict[str, object] = json.loads(body)
    return result


async def connected(server: Server) -> None:
    """Wait until ``server``'s backplane is connected (its ``/healthz``)."""

    async def available() -> bool:
        backplane = (await health(server))["backplane"]
        assert isinstance(backplane, dict)
        return backplane["available"] is True

    await eventually(available)


async def test_join_right_after_start_waits_for_the_backplane(redis: RedisServer) -> None:
    # The port opens a few milliseconds before Redis is connected: joins sent
    # at once wait for it instead of getting 1013.
    async with (
        server_process(*DUORELAY, DUORELAY_REDIS_URL=redis.url, **FAST) as (proc, server),
        server.join("first", 0) as a,
        server.join("first", 1) as b,
        hosting(server) as host,
    ):
        await host.send({"cmd": "prepare", "max_players": 4, "name": "quiz"})
        with trio.fail_after(10):
            await proc.read_next(joined("first", 0))
            await proc.read_next(joined("first", 1))
            await a.send_message("at once")
            assert await b.get_message() == "at once"
            assert (await host.recv())["cmd"] == "state"
            assert (await host.recv())["cmd"] == "prepare_reply"


async def test_joins_wait_while_the_backplane_connects(redis: RedisServer) -> None:
    # Process A hosts a room; its lease is long, so A does not need Redis while
    # Redis is paused below.
    async with (
        duorelays(redis, 1, DUORELAY_REDIS_LEASE="600") as [(_, server_a)],
        hosting(server_a) as far_host,
    ):
        code = await far_host.prepare(max_players=4, name="quiz")
        # Process B starts while Redis answers nothing: its first connection
        # hangs. Every kind of join arrives meanwhile, and waits.
        redis.pause()
        try:
            async with (
                server_process(
                    *DUORELAY, DUORELAY_REDIS_URL=redis.url, DUORELAY_BACKPLANE_WAIT="30", **FAST
                ) as (proc_b, server_b),
                server_b.join("early", 0) as a,
                server_b.join("early", 1) as b,
                hosting(server_b) as host,
                server_b.connect(f"/{code}") as far_client,
            ):
                await host.send({"cmd": "prepare", "max_players": 4, "name": "near"})
                await waiting(server_b, 4)
                redis.resume()
                with trio.fail_after(20):
                    await proc_b.read_next(joined("early", 0))
                    await proc_b.read_next(joined("early", 1))
                    await a.send_message("waited")
                    assert await b.get_message() == "waited"
                    assert (await host.recv())["cmd"] == "state"
                    assert (await host.recv())["cmd"] == "prepare_reply"
                    assert await far_host.recv() == {"cmd": "player_joined", "player": 1}
                    assert (await far_host.recv())["cmd"] == "state"
                    await far_client.send_message("from B")
                    assert await far_host.recv() == {
                        "cmd": "from_str",
                        "from": 1,
                        "data": "from B",
                    }
                assert await metric(server_b, "duorelay_backplane_waiting") == 0
        finally:
            redis.resume()


async def test_redis_down_at_start_join_waits_until_it_is_up(redis: RedisServer) -> None:
    await redis.stop()
    env = {"DUORELAY_BACKPLANE_WAIT": "30", **FAST}
    async with server_process(*DUORELAY, DUORELAY_REDIS_URL=redis.url, **env) as (proc, server):
        await proc.read_until(re.compile(rb"backplane unavailable: "))
        async with server.join("patient", 0) as a, server.join("patient", 1) as b:
            await waiting(server, 2)
            await redis.start()
            with trio.fail_after(20):
                await proc.read_next(joined("patient", 0))
                await proc.read_next(joined("patient", 1))
                await a.send_message("worth the wait")
                assert await b.get_message() == "worth the wait"


async def test_control_messages_over_the_bound_get_1013(
    redis: RedisServer, start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A WMBP client's join on a code not held here is a control message; with
    # no room left for one, the client gets 1013 (not 4404 after a round trip).
    server: Server = await start_server(redis_url=redis.url)
    await connected(server)
    async with server.connect("/ABCD") as refused:
        assert await closed_with(refused) == (4404, "no room with this code")
    monkeypatch.setattr(duorelay.cluster.publisher, "MAX_CONTROL", 0)
    async with server.connect("/ABCD") as refused:
        assert await closed_with(refused) == UNAVAILABLE


async def test_publisher_task_frees_room_for_control_messages(redis: RedisServer) -> None:
    publisher = Publisher(Stats(), timeout=2.0)
    for _ in range(MAX_CONTROL):
        publisher.send_nowait(b"nobody", b"control", None, None, frame=False)
    with pytest.raises(BackplaneUnavailable):
        publisher.send_nowait(b"nobody", b"control", None, None, frame=False)
    async with redis.client() as client, trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run, client)

        async def emptied() -> bool:
            return publisher.queued == (0, 0)

        await eventually(emptied)
        publisher.send_nowait(b"nobody", b"control", None, None, frame=False)
        nursery.cancel_scope.cancel()


async def test_backplane_bug_shows_in_healthz(
    redis: RedisServer,
    start_server: StartServer,
    server_log: LogWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: Server = await start_server(redis_url=redis.url)
    await connected(server)
    assert (await health(server))["status"] == "ok"
    assert await metric(server, 'duorelay_backplane_errors_total{kind="task"}') == 0

    def broken(kind: bytes, payload: bytes) -> object:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(duorelay.cluster.redis, "decode", broken)
    message = b"000000000000" + b"".join(encode(Frame(b"boom")))
    async with redis.client() as client:
        for count in (1, 2):  # the bug recurs on each new connection
            async with server.join("buggy", 0) as seat:
                await server_log.wait_for("joined", count, room="buggy")
                await client.publish("duorelay:seat:default:0:buggy", message)
                # The backplane's connection is dropped: a seat whose peer is
                # not here may have lost frames.
                assert await closed_with(seat) == UNAVAILABLE
            await connected(server)
            healthz = await health(server)
            assert healthz["status"] == "degraded"
            assert healthz["backplane"] == {
                "kind": "redis",
                "available": True,
                "internal_error": f"RuntimeError: injected bug ({count} in a row)",
            }
            assert await metric(server, 'duorelay_backplane_errors_total{kind="task"}') == count


async def test_failing_callback_is_counted(
    redis: RedisServer,
    start_server: StartServer,
    server_log: LogWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: Server = await start_server(redis_url=redis.url)
    await connected(server)

    def broken(frame: object) -> int:
        raise RuntimeError("injected bug")

    # A bug in the Kamon seat's deliver callback, after the frame is handed over.
    monkeypatch.setattr(duorelay.relay.kamon, "payload_size", broken)
    message = b"000000000000" + b"".join(encode(Frame(b"delivered")))
    async with server.join("cb", 0) as seat, redis.client() as client:
        await server_log.wait_for("joined", room="cb")
        for count in (1, 2):
            await client.publish("duorelay:seat:default:0:cb", message)
            assert await seat.get_message() == b"delivered"
            assert await metric(server, 'duorelay_backplane_errors_total{kind="callback"}') == (
                count
            )
    # The backplane went on: a callback's bug is not the backplane's.
    assert (await health(server))["status"] == "ok"


async def test_frame_for_a_seat_that_just_left_is_counted(
    redis: RedisServer,
    start_server: StartServer,
    server_log: LogWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A seat that leaves stops listening here at once, and is unsubscribed in
    # Redis a moment later. A frame published in between still reaches this
    # process, finds no listener, and is dropped: it must be counted
    # (absent_peer, rule 5), or a sender's frames go missing from the metrics.
    server: Server = await start_server(redis_url=redis.url)
    await connected(server)

    async def keep_subscriptions(self: RedisBackplane) -> None:
        """Hold that moment open: no UNSUBSCRIBE is sent."""

    monkeypatch.setattr(RedisBackplane, "_release_and_unlisten", keep_subscriptions)
    async with server.join("gone", 1):
        await server_log.wait_for("joined", room="gone")
    await server_log.wait_for("closed", room="gone")
    message = b"000000000000" + b"".join(encode(Frame(b"for nobody")))
    async with redis.client() as client:
        assert await client.publish("duorelay:seat:default:1:gone", message) == 1

    async def counted() -> bool:
        return await metric(server, 'duorelay_frames_dropped_total{reason="absent_peer"}') == 1

    await eventually(counted)
