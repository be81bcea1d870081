"""Hostile input to the XO service (review of issue 14): each answer exact,
never a 500, never a traceback in the log, the connection stays."""

from __future__ import annotations

import json
import logging

import pytest

from conftest import Server
from test_xo_ws import authorized, refused, started
from xo_client import call, move, sign_up

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
