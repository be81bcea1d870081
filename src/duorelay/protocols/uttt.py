"""The ultimate tic-tac-toe server protocol (docs/uttt.md), sans-IO.

Frames are JSON text ``{"type": str, "data": any}``, one message per frame.
:func:`decode` turns a client frame into one of the typed messages below
(:data:`ClientMessage`) or raises :class:`InvalidMessage`, whose ``msg`` is
what the server answers in ``{"type": "error", "data": {"msg": ...}}``.
:func:`encode` turns a server message (:data:`ServerMessage`) into its frame,
with exactly the fields of docs/uttt.md, "Server -> client".

Strings are bounded (:data:`MAX_NAME`, :data:`MAX_PASSWORD`, :data:`MAX_ID`)
so a client cannot make the server keep or look up long ones; whether a name
is a valid account name is the referee's call (a failed login, not bad input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_NAME = 64
"""Characters of a name (``login.name``, ``match_request.player``, ``user``) at most;
longer is bad input. Valid account names are 3 to 16 characters."""
MAX_PASSWORD = 128
"""Characters of a password at most (the contract allows 32; the accounts 128)."""
MAX_ID = 64
"""Characters of a session or match id at most (valid ones are 32 hex)."""


class InvalidMessage(ValueError):
    """A client frame that is not a message of the protocol; ``msg`` says why
    (safe to show, never echoes the frame)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


# -- client -> server -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Login:
    """``login``: ``name`` as sent (not yet lowercased); ``pw`` ``""`` is a temporary account."""

    name: str
    pw: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """``reconnect`` with session ``id``."""

    id: str


@dataclass(frozen=True, slots=True)
class MatchRequest:
    """``match_request``: ``player`` ``None`` for the random queue, else a name."""

    player: str | None


@dataclass(frozen=True, slots=True)
class Move:
    """``move`` in match ``id``: cell ``(x, y)`` of sub-board ``(sub_x, sub_y)``, each 0..2."""

    id: str
    sub_x: int
    sub_y: int
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class EndMatch:
    """``end_match`` of match ``id``."""

    id: str


@dataclass(frozen=True, slots=True)
class MatchStatesRequest:
    """``match_states_request`` (its data is ignored)."""


@dataclass(frozen=True, slots=True)
class FriendRequest:
    """``friend_request``: follow ``user``."""

    user: str


@dataclass(frozen=True, slots=True)
class UnfriendRequest:
    """``unfriend_request``: stop following ``user``."""

    user: str


ClientMessage = (
    Login
    | Reconnect
    | MatchRequest
    | Move
    | EndMatch
    | MatchStatesRequest
    | FriendRequest
    | UnfriendRequest
)


def decode(text: str | bytes) -> ClientMessage:
    """The message in client frame ``text``; :class:`InvalidMessage` if it is not
    JSON, not an object with a string ``type``, an unknown type, or its
    ``data`` lacks a field or has one of the wrong type or out of range."""
    if isinstance(text, bytes):
        raise InvalidMessage("frames are JSON text, not binary")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidMessage("not JSON") from None
    if not isinstance(frame, dict):
        raise InvalidMessage('a message is an object {"type": ..., "data": ...}')
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage('a message needs a string "type"')
    data = frame.get("data")
    if kind == "match_states_request":
        return MatchStatesRequest()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise InvalidMessage(f"unknown message type {kind[:32]!r}")
    if not isinstance(data, dict):
        raise InvalidMessage(f'{kind}: "data" must be an object')
    message: ClientMessage = decoder(data)
    return message


def _string(data: dict[str, Any], key: str, limit: int, kind: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidMessage(f'{kind}: "{key}" must be a string')
    if len(value) > limit:
        raise InvalidMessage(f'{kind}: "{key}" is longer than {limit} characters')
    return value


def _coordinate(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, str) and value in ("0", "1", "2"):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
        return value
    raise InvalidMessage(f'move: "{key}" must be 0, 1 or 2 (a number or a string)')


def _login(data: dict[str, Any]) -> Login:
    name = _string(data, "name", MAX_NAME, "login")
    return Login(name, _string(data, "pw", MAX_PASSWORD, "login"))


def _reconnect(data: dict[str, Any]) -> Reconnect:
    return Reconnect(_string(data, "id", MAX_ID, "reconnect"))


def _match_request(data: dict[str, Any]) -> MatchRequest:
    if "player" not in data:
        raise InvalidMessage('match_request: "player" is missing (null for a random opponent)')
    if data["player"] is None:
        return MatchRequest(None)
    return MatchRequest(_string(data, "player", MAX_NAME, "match_request"))


def _move(data: dict[str, Any]) -> Move:
    return Move(
        _string(data, "id", MAX_ID, "move"),
        _coordinate(data, "sub_x"),
        _coordinate(data, "sub_y"),
        _coordinate(data, "x"),
        _coordinate(data, "y"),
    )


_DECODERS: dict[str, Any] = {
    "login": _login,
    "reconnect": _reconnect,
    "match_request": _match_request,
    "move": _move,
    "end_match": lambda data: EndMatch(_string(data, "id", MAX_ID, "end_match")),
    "friend_request": lambda data: FriendRequest(
        _string(data, "user", MAX_NAME, "friend_request")
    ),
    "unfriend_request": lambda data: UnfriendRequest(
        _string(data, "user", MAX_NAME, "unfriend_request")
    ),
}


# -- server -> client -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginResponse:
    """``login_response``: ``id`` the session id (``None`` on failure); ``registered``
    whether this login created the account."""

    success: bool
    id: str | None
    registered: bool
    msg: str


@dataclass(frozen=True, slots=True)
class ReconnectResponse:
    """``reconnect_response``: ``user`` the account's name (``None`` on failure)."""

    success: bool
    id: str | None
    user: str | None
    registered: bool
    msg: str


@dataclass(frozen=True, slots=True)
class Response:
    """A yes/no answer: ``type`` is ``match_request_response``, ``friend_request_response``,
    ``unfriend_request_response`` or ``move_response``."""

    type: str
    success: bool
    msg: str


@dataclass(frozen=True, slots=True)
class FriendsUpdate:
    """``friends_update``: names and their ratings, in the same order."""

    friends: tuple[str, ...]
    elos: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EloUpdate:
    """``elo_update``: the user's rating and rank (``None`` for a temporary account)
    and the top list."""

    elo: int | None
    rank: int | None
    top_names: tuple[str, ...]
    top_elos: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MatchUpdate:
    """``match_update``: ``revoke_time`` ``"YYYY-MM-DD HH:MM:SS"`` (UTC); ``match_state``
    the object of :func:`duorelay.games.uttt.encode_match_state`."""

    id: str
    revoke_time: str
    ranked: bool
    match_state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    """``error``: bad input; the connection stays open."""

    msg: str


ServerMessage = (
    LoginResponse | ReconnectResponse | Response | FriendsUpdate | EloUpdate | MatchUpdate | Error
)


def encode(message: ServerMessage) -> str:
    """The JSON text frame of ``message`` (docs/uttt.md, "Server -> client")."""
    kind: str
    data: dict[str, Any]
    match message:
        case LoginResponse(success, id_, registered, msg):
            kind = "login_response"
            data = {"success": success, "id": id_, "registered": registered, "msg": msg}
        case ReconnectResponse(success, id_, user, registered, msg):
            kind = "reconnect_response"
            data = {
                "success": success,
                "id": id_,
                "user": user,
                "registered": registered,
                "msg": msg,
            }
        case Response(kind, success, msg):
            data = {"success": success, "msg": msg}
        case FriendsUpdate(friends, elos):
            kind = "friends_update"
            data = {"friends": list(friends), "elos": list(elos)}
        case EloUpdate(elo, rank, top_names, top_elos):
            kind = "elo_update"
            data = {
                "elo": elo,
                "rank": rank,
                "top_names": list(top_names),
                "top_elos": list(top_elos),
            }
        case MatchUpdate(id_, revoke_time, ranked, match_state):
            kind = "match_update"
            data = {
                "id": id_,
                "revoke_time": revoke_time,
                "ranked": ranked,
                "match_state": match_state,
            }
        case Error(msg):
            kind = "error"
            data = {"msg": msg}
    return json.dumps({"type": kind, "data": data})
