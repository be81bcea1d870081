"""Abuse limits and operations: origins, rates, connection cap, health, metrics, logs."""

from __future__ import annotations

import json
import logging

import pytest
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


async def test_rate_limit_4429_peer_undisturbed(start_server: StartServer) -> None:
    # A refill of 0.001 frame/s: the test's own pace cannot earn a token.
    server = await start_server(max_rate=0.001, max_burst=5)
    async with server.join("fast", 1) as peer:
        async with server.join("fast", 0) as flooder:  # the join is frame 1 of 5
            await settle()
            for n in range(5):
                await flooder.send_message(f"f{n}")
            assert await closed_with(flooder) == (
                4429,
                "too many messages: the limit is 0.001 per second",
            )
        assert [await peer.get_message() for _ in range(4)] == ["f0", "f1", "f2", "f3"]
        await settle()
        async with server.join("fast", 0) as calm:
            await settle()
            await peer.send_message("still here")
            assert await calm.get_message() == "still here"


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.5)  # half a second earns one token
    assert not bucket.allow(0.5)
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


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
