"""The UTTT codec (protocols/uttt.py) and Elo (referee/ratings.py): plain calls."""

from __future__ import annotations

import json

import pytest

from duorelay.protocols import uttt as wire
from duorelay.referee.ratings import expected, rated


def frame(kind: str, data: object) -> str:
    return json.dumps({"type": kind, "data": data})


def test_decodes_every_client_message() -> None:
    assert wire.decode(frame("login", {"name": "Ann", "pw": ""})) == wire.Login("Ann", "")
    assert wire.decode(frame("reconnect", {"id": "a" * 32})) == wire.Reconnect("a" * 32)
    assert wire.decode(frame("match_request", {"player": None})) == wire.MatchRequest(None)
    assert wire.decode(frame("match_request", {"player": "bob"})) == wire.MatchRequest("bob")
    move = {"id": "m", "sub_x": "1", "sub_y": 2, "x": "0", "y": 0}
    assert wire.decode(frame("move", move)) == wire.Move("m", 1, 2, 0, 0)
    assert wire.decode(frame("end_match", {"id": "m"})) == wire.EndMatch("m")
    assert wire.decode(frame("match_states_request", 17)) == wire.MatchStatesRequest()
    assert wire.decode(frame("friend_request", {"user": "x"})) == wire.FriendRequest("x")
    assert wire.decode(frame("unfriend_request", {"user": "x"})) == wire.UnfriendRequest("x")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        (b'{"type": "login"}', "binary"),
        ("[1, 2]", "an object"),
        ('{"data": {}}', 'string "type"'),
        (frame("dance", {}), "unknown message type"),
        (frame("login", None), '"data" must be an object'),
        (frame("login", {"name": "ann"}), '"pw" must be a string'),
        (frame("login", {"name": 5, "pw": "x"}), '"name" must be a string'),
        (frame("login", {"name": "a" * 65, "pw": "x"}), "longer than 64"),
        (frame("login", {"name": "ann", "pw": "x" * 129}), "longer than 128"),
        (frame("match_request", {}), '"player" is missing'),
        (frame("match_request", {"player": 3}), '"player" must be a string'),
        (frame("move", {"id": "m", "sub_x": 3, "sub_y": 0, "x": 0, "y": 0}), '"sub_x" must be'),
        (frame("move", {"id": "m", "sub_x": "-1", "sub_y": 0, "x": 0, "y": 0}), '"sub_x"'),
        (frame("move", {"id": "m", "sub_x": True, "sub_y": 0, "x": 0, "y": 0}), '"sub_x"'),
        (frame("move", {"id": "m", "sub_x": 0, "sub_y": 0, "x": 0}), '"y" must be'),
        (frame("move", {"sub_x": 0, "sub_y": 0, "x": 0, "y": 0}), '"id" must be a string'),
        (frame("end_match", {"id": "m" * 65}), "longer than 64"),
        (frame("friend_request", {"user": None}), '"user" must be a string'),
    ],
)
def test_refuses_bad_input_with_a_clear_message(text: str | bytes, says: str) -> None:
    with pytest.raises(wire.InvalidMessage) as refused:
        wire.decode(text)
    assert says in refused.value.msg


def test_encodes_every_server_message_with_the_exact_fields() -> None:
    def decoded(message: wire.ServerMessage) -> object:
        return json.loads(wire.encode(message))

    assert decoded(wire.LoginResponse(True, "s", True, "")) == {
        "type": "login_response",
        "data": {"success": True, "id": "s", "registered": True, "msg": ""},
    }
    assert decoded(wire.ReconnectResponse(False, None, None, False, "no")) == {
        "type": "reconnect_response",
        "data": {"success": False, "id": None, "user": None, "registered": False, "msg": "no"},
    }
    for kind in (
        "match_request_response",
        "friend_request_response",
        "unfriend_request_response",
        "move_response",
    ):
        assert decoded(wire.Response(kind, False, "why")) == {
            "type": kind,
            "data": {"success": False, "msg": "why"},
        }
    assert decoded(wire.FriendsUpdate(("a", "b"), (1000, 990))) == {
        "type": "friends_update",
        "data": {"friends": ["a", "b"], "elos": [1000, 990]},
    }
    assert decoded(wire.EloUpdate(None, None, ("a",), (1010,))) == {
        "type": "elo_update",
        "data": {"elo": None, "rank": None, "top_names": ["a"], "top_elos": [1010]},
    }
    assert decoded(wire.MatchUpdate("m", "2026-01-01 00:00:00", True, {"k": 1})) == {
        "type": "match_update",
        "data": {
            "id": "m",
            "revoke_time": "2026-01-01 00:00:00",
            "ranked": True,
            "match_state": {"k": 1},
        },
    }
    assert decoded(wire.Error("bad")) == {"type": "error", "data": {"msg": "bad"}}


def test_elo_as_the_contract_says() -> None:
    assert expected(1000, 1000) == 0.5
    assert (rated(1000, 1000, 1), rated(1000, 1000, 0)) == (1010, 990)
    assert (rated(1010, 990, 1), rated(990, 1010, 0)) == (1019, 981)
    assert (rated(1000, 1000, 0.5), rated(1200, 1000, 0.5)) == (1000, 1195)
