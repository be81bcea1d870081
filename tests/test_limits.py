"""Abuse limits and operations: origins, rates, connection cap, health, metrics, logs."""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing
from pythonjsonlogger.json import JsonFormatter

from conftest import LogWatch, Server, StartServer, closed_with, http_get, settle
from duorelay.core.limits import TokenBucket


async def test_origin_not_allowed_4403_others_undisturbed(start_server: StartServer) -> None:
    server = await start_server(allowed_origins=frozenset({"https://game.example"}))
    good = [(b"Origin", b"https://game.example")]
    async with server.connect(headers=good) as host, server.connect() as bot:
        await host.send_message("* o_0")
        await bot.send_message("* o_1")
        async with server.connect(headers=[(b"Origin", b"https://evil.example")]) as evil:
            assert await closed_with(evil) == (4403, "origin not allowed")
        await settle()
        await host.send_message("hello bot")
        assert await bot.get_message() == "hello bot"


def test_allowed_origins_setting_is_comma_separated() -> None:
    from duorelay.settings import Settings

    settings = Settings(allowed_origins="https://a.example, http://localhost:8000,")  # type: ignore[arg-type]
    assert settings.allowed_origins == {"https://a.example", "http://localhost:8000"}


async def test_over_the_rate_is_slowed_down_not_closed(
    start_server: StartServer, server_log: LogWatch, autojump_clock: trio.testing.MockClock
) -> None:
    """Rule 12: 5,000 frames as fast as a client can, at the default limits
    (200/s, burst 400): its reader waits for tokens (TCP pushes back on the
    client), and the peer gets every frame, in order; nobody is closed.
    On the autojump clock the 23 s the limit takes pass at once."""
    server = await start_server()
    count = 5000
    async with server.join("level", 1) as peer, server.join("level", 0) as uploader:
        await server_log.wait_for("joined", room="level", count=2)
        started = trio.current_time()

        async def upload() -> None:
            for n in range(count):
                await uploader.send_message(f"tile {n}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(upload)
            received = [await peer.get_message() for _ in range(count)]
        assert received == [f"tile {n}" for n in range(count)]
        # The limit held: 4,600 frames past the burst, at 200 a second.
        assert trio.current_time() - started >= (count - 400) / 200
        await uploader.send_message("done")
        assert await peer.get_message() == "done"
        await peer.send_message("got it")
        assert await uploader.get_message() == "got it"
    await server_log.wait_for("closed", room="level", count=2)
    assert not server_log.events("closed", code=4429)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.5)  # half a second earns one token
    assert not bucket.allow(0.5)
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_token_bucket_take_says_when() -> None:
    bucket = TokenBucket(rate=2, burst=2, now=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == 0.5  # the next token, earned at 0.5 s
    assert bucket.take(0.5) == 1.0  # the one after (the previous was spent at 0.5)
    assert bucket.take(10.0) == 10.0  # refilled, up to the burst
    assert bucket.take(10.0) == 10.0
    assert bucket.take(10.0) == 10.5


async def test_connection_cap_4429_others_undisturbed(start_server: StartServer) -> None:
    server = await start_server(max_connections=2)
    async with server.join("cap", 0) as a, server.join("cap", 1) as b:
        async with server.connect() as third:
            assert await closed_with(third) == (4429, "too many connections: try again later")
        await settle()
        await a.send_message("fine")
        assert await b.get_message() == "fine"
    await settle()
    async with server.join("cap", 0) as again:  # the slots are free again
        await again.send_message("x")
        await settle()
        assert len(server.app.sessions) == 1


async def test_healthz(server: Server) -> None:
    async with server.join("h", 0), server.join("h", 1), server.join("i", 0):
        await settle()
        status, headers, body = await http_get(server, "/healthz")
    assert status == 200
    assert headers["content-type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert (health["rooms"], health["connections"]) == (2, 3)
    assert health["uptime"] >= 0
    assert health["backplane"] == {"kind": "in-process", "available": True}


async def test_metrics(server: Server) -> None:
    async with server.join("m", 0) as a, server.join("m", 1) as b:
        await settle()
        await a.send_message("héllo")  # 6 bytes of UTF-8
        await b.get_message()
        await b.send_message(b"\x00\x01")
        await a.get_message()
        async with server.join("m", 0) as intruder:
            await closed_with(intruder)
        await settle()
        status, headers, body = await http_get(server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    lines = set(body.decode().splitlines())
    for line in (
        "duorelay_connections 2.0",
        "duorelay_rooms 1.0",
        "duorelay_connections_accepted_total 3.0",
        "duorelay_frames_relayed_total 2.0",
        "duorelay_bytes_relayed_total 8.0",
        'duorelay_frames_dropped_total{reason="absent_peer"} 0.0',
        'duorelay_frames_dropped_total{reason="peer_left"} 0.0',
        'duorelay_closes_total{code="4409"} 1.0',
    ):
        assert line in lines, line


async def test_log_records_carry_structured_fields(server: Server, server_log: LogWatch) -> None:
    async with server.join("J", 1) as ws:
        await ws.send_message("payload-never-logged")
    closed = await server_log.wait_for("closed", room="J")
    formatted = json.loads(JsonFormatter("%(message)s").format(closed))
    assert formatted["event"] == "closed"
    assert formatted["ns"] == "default"
    assert formatted["room"] == "J"
    assert formatted["seat"] == 1
    assert formatted["code"] is None
    assert formatted["frames_in"] == 2
    assert isinstance(formatted["seconds"], float)
    assert isinstance(formatted["conn"], int)
    assert "payload-never-logged" not in json.dumps(formatted)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"DUORELAY_REDIS_URL": "localhost:6379"},
            "DUORELAY_REDIS_URL='localhost:6379': Value error, must start with redis://, "
            "rediss:// or unix://",
        ),
        (
            {"DUORELAY_REDIS_URL": "redis://localhost:abc/0"},
            "DUORELAY_REDIS_URL='redis://localhost:abc/0': Value error, not a usable Redis URL "
            "(Port could not be cast",
        ),
        ({"DUORELAY_REDIS_LEASE": "0.1"}, "DUORELAY_REDIS_LEASE='0.1': Input should be greater"),
        ({"DUORELAY_REDIS_PREFIX": "a b"}, "DUORELAY_REDIS_PREFIX='a b': String should match"),
    ],
)
def test_bad_redis_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    from duorelay.settings import SettingsError, load_settings

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert message in str(error.value)


def test_redis_settings() -> None:
    from duorelay.settings import Settings

    settings = Settings(redis_url="redis://10.0.0.5:6379/2", redis_lease=2.5)
    assert (settings.redis_url, settings.redis_prefix, settings.redis_lease) == (
        "redis://10.0.0.5:6379/2",
        "duorelay",
        2.5,
    )
    assert Settings().redis_url is None  # the default: rooms live in one process


def test_log_format_setting() -> None:
    from duorelay.observability import log_formatter

    assert isinstance(log_formatter("json"), JsonFormatter)
    assert type(log_formatter("text")) is logging.Formatter
