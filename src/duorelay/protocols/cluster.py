"""Messages between duorelay processes through the backplane, sans-IO.

A message is one *kind* byte and a payload; the backplane publishes
``node id + kind + payload`` to an address (a Redis channel). This module is
the one place that knows those bytes: :func:`encode` turns a typed message into
``(kind, payload)``, :func:`decode` turns them back, raising
:class:`BadClusterMessage` for anything else. Nothing here does I/O.

=========  ==========================  ==============================================
to         kind                        payload
=========  ==========================  ==============================================
seat,      ``t`` / ``b``               a text (UTF-8) / binary frame (:class:`Frame`)
client
host       ``T`` / ``B``               player id + text (UTF-8) / binary frame
                                       from a client (:class:`PlayerFrame`)
host       ``J`` join                  the client's address, UTF-8 (:class:`Join`)
host       ``Q`` left                  the client's address: its socket is gone
                                       (:class:`Left`)
client     ``A`` accepted              player id (:class:`Accepted`)
client     ``L`` locked                nothing: the room is full or started, 4423
                                       (:class:`Locked`)
client     ``C`` close                 close code (2 bytes), flush (1 byte), reason
                                       UTF-8 (:class:`Close`)
=========  ==========================  ==============================================

A player id is 4 bytes, big-endian (WMBP ids are ``u32``). Frames
(:class:`Frame`, :class:`PlayerFrame`) count against the publish queue's bound;
the others are *control* messages, at most a few per connection
(:func:`is_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

Payload: TypeAlias = str | bytes
"""A websocket frame carried in a message: text or binary."""


class BadClusterMessage(ValueError):
    """Bytes from the backplane that are not a message of this table."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame for a seat's holder (Kamon) or a WMBP client from its host."""

    data: Payload


@dataclass(frozen=True, slots=True)
class PlayerFrame:
    """A frame from WMBP client ``player`` (on another process) for its host."""

    player: int
    data: Payload


@dataclass(frozen=True, slots=True)
class Join:
    """A WMBP client listening at ``address`` asks to join the host's room."""

    address: str


@dataclass(frozen=True, slots=True)
class Left:
    """The WMBP client at ``address`` is gone (its socket closed)."""

    address: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The host's room took the client in as ``player``."""

    player: int


@dataclass(frozen=True, slots=True)
class Locked:
    """The host's room is full or started: the client gets 4423."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the client with ``code`` and ``reason``; ``flush`` sends its queued
    frames first."""

    code: int
    flush: bool
    reason: str


ClusterMessage: TypeAlias = Frame | PlayerFrame | Join | Left | Accepted | Locked | Close


def is_frame(message: ClusterMessage) -> bool:
    """Whether ``message`` carries a websocket frame (bounded by the publish queue)."""
    return isinstance(message, Frame | PlayerFrame)


def encode(message: ClusterMessage) -> tuple[bytes, bytes]:
    """``message`` as ``(kind, payload)``."""
    match message:
        case Frame(data=str() as text):
            return b"t", text.encode()
        case Frame(data=bytes() as data):
            return b"b", data
        case PlayerFrame(player=player, data=str() as text):
            return b"T", _player(player) + text.encode()
        case PlayerFrame(player=player, data=bytes() as data):
            return b"B", _player(player) + data
        case Join(address=address):
            return b"J", address.encode()
        case Left(address=address):
            return b"Q", address.encode()
        case Accepted(player=player):
            return b"A", _player(player)
        case Locked():
            return b"L", b""
        case Close(code=code, flush=flush, reason=reason):
            return b"C", code.to_bytes(2, "big") + bytes([flush]) + reason.encode()
    raise TypeError(f"not a cluster message: {message!r}")


def decode(kind: bytes, payload: bytes) -> ClusterMessage:
    """The message :func:`encode` made of ``(kind, payload)``.

    Raises :class:`BadClusterMessage` for an unknown kind, a short payload or
    text that is not UTF-8.
    """
    try:
        match kind:
            case b"t":
                return Frame(payload.decode())
            case b"b":
                return Frame(payload)
            case b"T":
                return PlayerFrame(_player_of(payload), payload[4:].decode())
            case b"B":
                return PlayerFrame(_player_of(payload), payload[4:])
            case b"J":
                return Join(payload.decode())
            case b"Q":
                return Left(payload.decode())
            case b"A":
                return Accepted(_player_of(payload))
            case b"L":
                return Locked()
            case b"C" if len(payload) >= 3:
                return Close(
                    int.from_bytes(payload[:2], "big"), bool(payload[2]), payload[3:].decode()
                )
    except UnicodeDecodeError as error:
        raise BadClusterMessage(f"kind {kind!r}: text is not UTF-8") from error
    raise BadClusterMessage(f"kind {kind!r} with {len(payload)} bytes is not a message")


def _player(player: int) -> bytes:
    return player.to_bytes(4, "big")


def _player_of(payload: bytes) -> int:
    if len(payload) < 4:
        raise BadClusterMessage("a player id is 4 bytes")
    return int.from_bytes(payload[:4], "big")
