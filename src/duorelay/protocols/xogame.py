"""The XO game websocket protocol, sans-IO (docs/xogame.md, "Websocket /ws").

One decode (:func:`decode`: a client's frame to :class:`Authorize`,
:class:`Command` or :class:`Close`, or :class:`BadMessage`) and one encode per
direction the server sends: :func:`reply` (the double-encoded ``{"ok",
"error"}``) and :func:`broadcast` (``{"type": "broadcast", "data": event}``).
Events are dicts in the shape of ``GET /game/fetch`` (:func:`event`).

Ids: the XO API shows ids as dashed UUIDs (:func:`dashed`); duorelay stores
them as 32 lowercase hex characters (:func:`uuid_hex` reads any form
``uuid.UUID`` accepts).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

POLICY_VIOLATION = 1008
"""The close code after a refused ``authorize`` (RFC 6455: policy violation)."""

BAD_GAME = "Bad game reference"
"""The error of a command for another game than the authorized one, or before authorize."""
BAD_PLAYER = "Bad player reference"
"""The error of a command whose ``player_uuid`` (or ``params.player``) is not the token's."""

FIRST_FRAME_XO = "{"
"""A first frame on ``/ws`` that starts with this is the XO protocol; else Kamon."""


class BadMessage(ValueError):
    """A frame that is not a message of this protocol; ``str()`` is the error sent back."""


@dataclass(frozen=True, slots=True)
class Authorize:
    """``{"type": "authorize", "data": {"token"}}``: the per-game token."""

    token: str


@dataclass(frozen=True, slots=True)
class Command:
    """``{"type": "command", "data": {...}}``: a move. Ids are 32 hex characters;
    ``cell`` is ``(x, y)`` (x the column, y the row, from 0); ``timestamp`` is
    the client's, kept as given (the server stamps events with its own time)."""

    game_uuid: str
    name: str
    sequence: int
    player_uuid: str
    timestamp: str
    player: str
    cell: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Close:
    """``{"type": "close"}``: the server closes the connection (1000)."""


Message = Authorize | Command | Close


def uuid_hex(value: object) -> str | None:
    """``value`` as 32 lowercase hex characters if it is a UUID string (dashed,
    hex, braced, ``urn:uuid:``), else ``None``."""
    if not isinstance(value, str) or len(value) > 45:
        return None
    try:
        return uuid.UUID(value).hex
    except ValueError:
        return None


def dashed(hex_id: str) -> str:
    """32 hex characters as a dashed UUID (``8-4-4-4-12``)."""
    return str(uuid.UUID(hex=hex_id))


def decode(frame: str | bytes) -> Message:
    """Parse one client frame; :class:`BadMessage` (its text is the reply's
    ``error``) for anything else: not JSON (or nested too deeply to parse),
    not an object, an unknown ``type``, a missing or mistyped field."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode()
        except UnicodeDecodeError:
            raise BadMessage("Bad message: not UTF-8 JSON") from None
    try:
        value = json.loads(frame)
    except ValueError:
        raise BadMessage("Bad message: not JSON") from None
    except RecursionError:  # nested deeper than the interpreter's recursion limit
        raise BadMessage("Bad message: nested too deeply") from None
    if not isinstance(value, dict):
        raise BadMessage("Bad message: not a JSON object")
    kind = value.get("type")
    if kind == "close":
        return Close()
    data = value.get("data")
    if kind == "authorize":
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise BadMessage("Bad message: authorize needs data.token, a string")
        return Authorize(data["token"])
    if kind == "command":
        if not isinstance(data, dict):
            raise BadMessage("Bad message: command needs data, an object")
        return _command(data)
    raise BadMessage(f"Bad message: unknown type {_show(kind)}")


def _command(data: dict[str, Any]) -> Command:
    game = uuid_hex(data.get("game_uuid"))
    if game is None:
        raise BadMessage("Bad message: data.game_uuid must be a UUID")
    player = uuid_hex(data.get("player_uuid"))
    if player is None:
        raise BadMessage("Bad message: data.player_uuid must be a UUID")
    name = data.get("name")
    if not isinstance(name, str):
        raise BadMessage("Bad message: data.name must be a string")
    sequence = data.get("sequence")
    if not _integer(sequence):
        raise BadMessage("Bad message: data.sequence must be an integer")
    timestamp = data.get("timestamp")
    if not isinstance(timestamp, str):
        raise BadMessage("Bad message: data.timestamp must be a string")
    params = data.get("params")
    if not isinstance(params, dict):
        raise BadMessage("Bad message: data.params must be an object")
    params_player = uuid_hex(params.get("player"))
    if params_player is None:
        raise BadMessage("Bad message: data.params.player must be a UUID")
    cell = params.get("cell")
    if not (isinstance(cell, list) and len(cell) == 2 and all(_integer(c) for c in cell)):
        raise BadMessage("Bad message: data.params.cell must be [x, y], two integers")
    return Command(game, name, int(sequence), player, timestamp, params_player, (cell[0], cell[1]))


def _integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31


def _show(value: object) -> str:
    """``value`` as JSON, cut to 40 characters; a container only by its kind
    (it may be nested nearly as deep as :func:`json.loads` allows, and
    encoding it back could go past the recursion limit)."""
    if isinstance(value, dict):
        return "(an object)"
    if isinstance(value, list):
        return "(an array)"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def reply(error: str | None = None) -> str:
    """The reply frame: a JSON *string* holding ``{"ok": true, "error": null}``
    (or ``{"ok": false, "error": error}``), as the original sends it."""
    return json.dumps(json.dumps({"ok": error is None, "error": error}))


def broadcast(event_body: dict[str, Any]) -> str:
    """The broadcast frame of one event (a plain JSON object)."""
    return json.dumps({"type": "broadcast", "data": event_body})


def event(game_hex: str, sequence: int, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """One event as ``/game/fetch`` and broadcasts show it: ``{"name",
    "game_uuid", "sequence", "player_uuid", "timestamp", "params"}``, from the
    stored ``data`` (``{"player_uuid", "timestamp", "params"}``, ids dashed)."""
    return {
        "name": name,
        "game_uuid": dashed(game_hex),
        "sequence": sequence,
        "player_uuid": data.get("player_uuid"),
        "timestamp": data.get("timestamp"),
        "params": data.get("params", {}),
    }
