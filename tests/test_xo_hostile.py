"""Hostile input to the XO service (review of issue 14): each answer exact,
never a 500, never a traceback in the log, the connection stays."""

from __future__ import annotations

import json
import logging

import pytest
import trio
from sqlalchemy.exc import OperationalError

from conftest import Server, StartServer, closed_with
from test_xo_ws import OK, authorized, refused, started
from xo_client import authorize, broadcast, call, move, reply, sign_up

DEEP = "[" * 30_000 + "]" * 30_000
"""JSON nested far deeper than Python's recursion limit (well under the size limits)."""


@pytest.fixture
def tracebacks(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_deeply_nested_frames_are_bad_messages(
    server: Server, tracebacks: pytest.LogCaptureFixture
) -> None:
    game = await started(server)
    async with server.connect() as ws:
        too_deep = "Bad message: nested too deeply"
        await refused(ws, '{"type": ' + DEEP + "}", too_deep)  # the first frame (sniffed)
        await refused(ws, '{"type": "x", "data": ' + DEEP + "}", too_deep)
        await authorized(ws, await game.intra(game.x))
        await refused(ws, '{"type": "command", "data": ' + DEEP + "}", too_deep)
        # Nested just shallow enough to parse: its type is not echoed back whole.
        shallow = "[" * 900 + "]" * 900
        await refused(ws, '{"type": ' + shallow + "}", "Bad message: unknown type (an array)")
        await ws.send_message(move(game.id, game.x[0], 2, 0, 0))
        assert (await ws.get_message()).startswith('{"type": "broadcast"')
    assert_no_traceback(tracebacks)


JSON_INVALID = {
    "detail": [{"loc": ["body", 0], "msg": "JSON decode error", "type": "json_invalid"}]
}


async def test_connect_bodies_that_are_not_json(
    server: Server, tracebacks: pytest.LogCaptureFixture
) -> None:
    alice, bob = await sign_up(server, "alice"), await sign_up(server, "bob")
    game = (await call(server, "POST", "/game/", token=alice))[2]["game_uuid"]
    json_type = [("Content-Type", "application/json")]
    for raw in [b'{"uuid": "\xff"}', DEEP.encode(), b'{"uuid": ' + DEEP.encode() + b"}", b"{{"]:
        status, _, body = await call(
            server, "POST", "/game/connect", token=bob, raw=raw, headers=json_type
        )
        assert (status, body) == (422, JSON_INVALID), raw[:20]
    # The literal null is JSON: not an object.
    status, _, body = await call(
        server, "POST", "/game/connect", token=bob, raw=b"null", headers=json_type
    )
    assert status == 422 and body["detail"][0]["type"] == "model_type"
    # UTF-16 (RFC 8259 allows a receiver to take it) and a UTF-8 BOM are JSON.
    status, _, body = await call(
        server,
        "POST",
        "/game/connect",
        token=bob,
        raw=json.dumps({"uuid": game}).encode("utf-16"),
        headers=json_type,
    )
    assert (status, body) == (200, None)
    assert_no_traceback(tracebacks)


async def test_fast_commands_are_answered_in_order_and_the_connection_stays(
    start_server: StartServer, tracebacks: pytest.LogCaptureFixture
) -> None:
    # A client that sends 1000 refused commands at once and reads its replies:
    # each gets its reply (in order), none is dropped, the connection is not
    # closed as too slow (its replies wait for room, its reads are slowed).
    server = await start_server(max_burst=5000, max_rate=5000)
    game = await started(server)
    count = 1000
    async with server.connect() as ws:
        await authorized(ws, await game.intra(game.x))
        errors: list[str] = []

        async def read() -> None:
            while len(errors) < count:
                errors.append((await reply(ws))["error"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            for sequence in range(100, 100 + count):
                await ws.send_message(move(game.id, game.x[0], sequence, 0, 0))
        assert errors == [f"Bad sequence {s}: the next one is 2" for s in range(100, 100 + count)]
        await ws.send_message(move(game.id, game.x[0], 2, 0, 0))
        assert (await broadcast(ws))["sequence"] == 2
        assert await reply(ws) == OK
    assert_no_traceback(tracebacks)


class Unavailable(OperationalError):
    def __init__(self) -> None:
        super().__init__("SELECT", {}, Exception("database is locked"))


async def test_store_unavailable_when_a_game_is_loaded(
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
    tracebacks: pytest.LogCaptureFixture,
) -> None:
    # No lingering: every game is loaded from the store when it is next used.
    server = await start_server(match_linger=0)
    game = await started(server)
    intra = await game.intra(game.x)
    carol = await sign_up(server, "carol")
    waiting = (await call(server, "POST", "/game/", token=carol))[2]["game_uuid"]

    def load(connection: object, match_id: str) -> None:
        raise Unavailable

    matches = server.app.xo.matches
    assert matches is not None
    monkeypatch.setattr(matches.game, "load", load)
    unavailable = "the game service is unavailable: try again later"
    status, _, body = await call(
        server, "POST", "/game/connect", token=game.x[1], body={"uuid": waiting}
    )
    assert (status, body) == (503, {"detail": unavailable})
    async with server.connect() as ws:
        await ws.send_message(authorize(intra))
        assert await reply(ws) == {"ok": False, "error": unavailable}
        assert await closed_with(ws) == (1013, unavailable)
    assert_no_traceback(tracebacks)


async def test_bodies_over_the_limit(server: Server, tracebacks: pytest.LogCaptureFixture) -> None:
    token = await sign_up(server, "alice")
    too_large = {"detail": "Request Entity Too Large"}
    for path, headers in [
        ("/auth/login", [("Content-Type", "application/x-www-form-urlencoded")]),
        ("/auth/signup", [("Content-Type", "multipart/form-data; boundary=x")]),
        ("/game/connect", [("Content-Type", "application/json")]),
    ]:
        status, answer, body = await call(
            server, "POST", path, token=token, raw=b"a" * 70_000, headers=headers
        )
        assert (status, body) == (413, too_large), path
        assert answer["connection"] == "close"
    # Other paths keep the app's plain text.
    status, _, body = await call(server, "POST", "/healthz", raw=b"a" * 70_000)
    assert (status, body) == (413, b"413 Request Entity Too Large")
    assert_no_traceback(tracebacks)


async def test_multipart_login_form(server: Server) -> None:
    # FastAPI's OAuth2 password form takes multipart/form-data too (Quart 0.23
    # lost its fields: the app reads the body before routing).
    await sign_up(server, "alice")
    fields = [("username", "alice"), ("password", "secret-pw")]
    parts = b"".join(
        b'--xyz\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode())
        for name, value in fields
    )
    multipart = [("Content-Type", "multipart/form-data; boundary=xyz")]
    status, _, body = await call(
        server, "POST", "/auth/login", raw=parts + b"--xyz--\r\n", headers=multipart
    )
    assert status == 200 and body["token_type"] == "Bearer", body
    # A malformed multipart body has no fields.
    status, _, body = await call(
        server, "POST", "/auth/login", raw=b"--xyz\r\nbad", headers=multipart
    )
    assert status == 422 and [e["loc"] for e in body["detail"]] == [
        ["body", "username"],
        ["body", "password"],
    ]
