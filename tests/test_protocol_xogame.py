"""protocols/xogame.py: one decode, the encodes, ids (docs/xogame.md, Websocket /ws)."""

from __future__ import annotations

import json

import pytest

from duorelay.protocols import xogame as wire

GAME = "0f0e0d0c-0b0a-4908-8706-050403020100"
PLAYER = "11111111-2222-4333-8444-555555555555"


def command(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "game_uuid": GAME,
        "name": "move",
        "sequence": 2,
        "player_uuid": PLAYER,
        "timestamp": "2026-01-01T00:00:00Z",
        "params": {"player": PLAYER, "cell": [1, 2]},
    }
    data.update(changes)
    return {"type": "command", "data": data}


def test_decode_messages() -> None:
    assert wire.decode('{"type": "authorize", "data": {"token": "t"}}') == wire.Authorize("t")
    assert wire.decode('{"type": "close"}') == wire.Close()
    assert wire.decode(json.dumps(command()).encode()) == wire.Command(
        GAME.replace("-", ""),
        "move",
        2,
        PLAYER.replace("-", ""),
        "2026-01-01T00:00:00Z",
        PLAYER.replace("-", ""),
        (1, 2),
    )


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("nope", "Bad message: not JSON"),
        ('"string"', "Bad message: not a JSON object"),
        ("{}", "Bad message: unknown type null"),
        ('{"type": "authorize"}', "Bad message: authorize needs data.token, a string"),
        (
            '{"type": "authorize", "data": {"token": 1}}',
            "Bad message: authorize needs data.token, a string",
        ),
        (json.dumps(command(sequence="2")), "Bad message: data.sequence must be an integer"),
        (json.dumps(command(sequence=True)), "Bad message: data.sequence must be an integer"),
        (json.dumps(command(name=None)), "Bad message: data.name must be a string"),
        (json.dumps(command(timestamp=5)), "Bad message: data.timestamp must be a string"),
        (json.dumps(command(params=[])), "Bad message: data.params must be an object"),
        (
            json.dumps(command(params={"player": "x", "cell": [0, 0]})),
            "Bad message: data.params.player must be a UUID",
        ),
        (
            json.dumps(command(params={"player": PLAYER, "cell": [0]})),
            "Bad message: data.params.cell must be [x, y], two integers",
        ),
        (
            json.dumps(command(params={"player": PLAYER, "cell": [0, 1.5]})),
            "Bad message: data.params.cell must be [x, y], two integers",
        ),
        (json.dumps(command(game_uuid="g" * 32)), "Bad message: data.game_uuid must be a UUID"),
    ],
)
def test_decode_errors(frame: str, error: str) -> None:
    with pytest.raises(wire.BadMessage) as raised:
        wire.decode(frame)
    assert str(raised.value) == error


def test_encodes() -> None:
    assert wire.reply() == '"{\\"ok\\": true, \\"error\\": null}"'
    assert json.loads(json.loads(wire.reply("no"))) == {"ok": False, "error": "no"}
    event = wire.event(
        GAME.replace("-", ""), 3, "move", {"player_uuid": PLAYER, "timestamp": "t", "params": {}}
    )
    assert event == {
        "name": "move",
        "game_uuid": GAME,
        "sequence": 3,
        "player_uuid": PLAYER,
        "timestamp": "t",
        "params": {},
    }
    assert json.loads(wire.broadcast(event)) == {"type": "broadcast", "data": event}


def test_ids() -> None:
    assert wire.uuid_hex(GAME.upper()) == GAME.replace("-", "")
    assert wire.uuid_hex(GAME.replace("-", "")) == GAME.replace("-", "")
    assert wire.uuid_hex("nope") is None and wire.uuid_hex(5) is None
    assert wire.dashed(GAME.replace("-", "")) == GAME
