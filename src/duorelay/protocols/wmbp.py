"""The WMBP host/clients protocol, sans-IO (docs/protocols.md section 2).

WMBP ("Websocket multiplayer backend proxy") has one host per room and many
clients that talk only to the host. Clients have no protocol of their own: their
frames are wrapped into :class:`From`/:class:`FromStr` for the host, and the
host's :class:`To`/:class:`ToStr` reach them as bare frames. Only the host
speaks in messages: maps with a ``"cmd"`` key, CBOR in binary frames or JSON in
text frames on the way in, always CBOR on the way out.

:func:`decode` turns a host frame into a typed message; :func:`encode` turns a
server message into the CBOR bytes of a binary frame. Nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import cbor2

CODE_LENGTH = 4
"""Room codes are 4 letters A-Z (section 2, "Room codes")."""

CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

MAX_UINT = 2**32 - 1
"""WMBP's ids and counts are Rust ``u32``."""

CREATE_PATH = "/CREATE"

_CODE_PATH = re.compile(r"/[A-Z]{4}")


def code_for_path(path: str) -> str | None:
    """The room code of a client path ``/{CODE}`` (exactly 4 letters ``A``-``Z``),
    or None: other 4-character paths (lowercase ones such as ``/uttt``) are not
    WMBP's (docs/protocols.md section 2, "Endpoints")."""
    return path[1:] if _CODE_PATH.fullmatch(path) else None


class BadMessage(ValueError):
    """A host frame that cannot be decoded or validated; ``str()`` names the problem.

    The host gets one ``error`` message with that reason and stays connected
    (section 2, rule 8).
    """


# Host to server.


@dataclass(frozen=True, slots=True)
class Prepare:
    """Open the room to ``max_players`` clients, named ``name``."""

    max_players: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Start:
    """Stop accepting new clients, for good."""


@dataclass(frozen=True, slots=True)
class Kick:
    """Remove client ``player`` from the room."""

    player: int


@dataclass(frozen=True, slots=True)
class Stop:
    """End the game: the host and every client are closed."""


@dataclass(frozen=True, slots=True)
class To:
    """Send ``data`` as a binary frame to the clients ``to`` (empty: every client)."""

    to: tuple[int, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class ToStr:
    """Send ``data`` as a text frame to the clients ``to`` (empty: every client)."""

    to: tuple[int, ...]
    data: str


HostMessage = Prepare | Start | Kick | Stop | To | ToStr


# Server to host.


@dataclass(frozen=True, slots=True)
class State:
    """The room as the host should see it."""

    name: str
    players: tuple[int, ...]
    max_players: int
    accept_conns: bool


@dataclass(frozen=True, slots=True)
class PrepareReply:
    """The room's code (``key``), once the room is joinable."""

    key: str


@dataclass(frozen=True, slots=True)
class PlayerJoined:
    player: int


@dataclass(frozen=True, slots=True)
class PlayerLeft:
    player: int


@dataclass(frozen=True, slots=True)
class From:
    """Client ``from_``'s binary frame (``from`` on the wire)."""

    from_: int
    data: bytes


@dataclass(frozen=True, slots=True)
class FromStr:
    """Client ``from_``'s text frame (``from`` on the wire)."""

    from_: int
    data: str


@dataclass(frozen=True, slots=True)
class Error:
    """The host's last frame was refused; ``reason`` says why."""

    reason: str


ServerMessage = State | PrepareReply | PlayerJoined | PlayerLeft | From | FromStr | Error

_SERVER_COMMANDS = frozenset(
    {"state", "prepare_reply", "player_joined", "player_left", "from", "from_str", "error"}
)


@dataclass(frozen=True, slots=True)
class _Fields:
    """Typed access to the fields of one decoded map, raising :class:`BadMessage`."""

    cmd: str
    raw: Mapping[object, object] = field(repr=False)

    def _get(self, name: str) -> object:
        if name not in self.raw:
            raise BadMessage(f"{self.cmd}: missing field {name!r}")
        return self.raw[name]

    def uint(self, name: str) -> int:
        value = self._get(name)
        if not _is_uint(value):
            raise BadMessage(f"{self.cmd}: {name!r} must be an integer from 0 to {MAX_UINT}")
        assert isinstance(value, int)
        return value

    def text(self, name: str, default: str | None = None) -> str:
        if default is not None and name not in self.raw:
            return default
        value = self._get(name)
        if not isinstance(value, str):
            raise BadMessage(f"{self.cmd}: {name!r} must be a string")
        try:
            value.encode()
        except UnicodeEncodeError:  # JSON can spell a lone surrogate: "\ud800"
            raise BadMessage(f"{self.cmd}: {name!r} is not valid Unicode") from None
        return value

    def players(self, name: str) -> tuple[int, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(_is_uint(item) for item in value):
            raise BadMessage(f"{self.cmd}: {name!r} must be a list of player ids")
        return tuple(value)

    def payload(self, name: str) -> bytes:
        value = self._get(name)
        if isinstance(value, bytes):
            return value
        if isinstance(value, list) and all(
            isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 255
            for item in value
        ):
            return bytes(value)
        raise BadMessage(f"{self.cmd}: {name!r} must be bytes or a list of integers 0-255")


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UINT


def decode(frame: str | bytes) -> HostMessage | None:
    """Decode a host frame: CBOR if binary, JSON if text.

    Returns the message, or ``None`` for a map whose ``cmd`` is a server-to-host
    command (ignored, as WMBP does). Bytes after one complete CBOR item are
    ignored. Unknown extra keys are ignored. Raises :class:`BadMessage` naming
    the problem for anything else: undecodable bytes or text, not a map, no
    ``cmd``, an unknown ``cmd``, a missing or mistyped field.
    """
    try:
        raw = json.loads(frame) if isinstance(frame, str) else cbor2.loads(frame)
    except (ValueError, RecursionError, cbor2.CBORError) as error:
        kind = "JSON" if isinstance(frame, str) else "CBOR"
        raise BadMessage(f"not valid {kind}: {error}") from None
    if not isinstance(raw, Mapping):
        raise BadMessage(f"expected a map with a 'cmd' key, got {type(raw).__name__}")
    cmd = raw.get("cmd")
    if not isinstance(cmd, str):
        raise BadMessage("the map has no 'cmd' string")
    fields = _Fields(cmd, raw)
    if cmd == "prepare":
        return Prepare(max_players=fields.uint("max_players"), name=fields.text("name", ""))
    if cmd == "start":
        return Start()
    if cmd == "kick":
        return Kick(player=fields.uint("player"))
    if cmd == "stop":
        return Stop()
    if cmd == "to":
        return To(to=fields.players("to"), data=fields.payload("data"))
    if cmd == "to_str":
        return ToStr(to=fields.players("to"), data=fields.text("data"))
    if cmd in _SERVER_COMMANDS:
        return None
    raise BadMessage(f"unknown cmd {cmd[:40]!r}")


def encode(message: ServerMessage) -> bytes:
    """The CBOR map of a server-to-host message, for a binary frame.

    Byte payloads go out as arrays of integers 0-255, which WMBP clients decode.
    """
    wire: dict[str, object]
    match message:
        case State():
            wire = {
                "cmd": "state",
                "name": message.name,
                "players": list(message.players),
                "max_players": message.max_players,
                "accept_conns": message.accept_conns,
            }
        case PrepareReply():
            wire = {"cmd": "prepare_reply", "key": message.key}
        case PlayerJoined():
            wire = {"cmd": "player_joined", "player": message.player}
        case PlayerLeft():
            wire = {"cmd": "player_left", "player": message.player}
        case From():
            wire = {"cmd": "from", "from": message.from_, "data": list(message.data)}
        case FromStr():
            wire = {"cmd": "from_str", "from": message.from_, "data": message.data}
        case Error():
            wire = {"cmd": "error", "reason": message.reason}
    return cbor2.dumps(wire)
