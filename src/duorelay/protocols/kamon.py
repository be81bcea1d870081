"""The Kamon two-seat relay protocol, sans-IO (docs/protocols.md section 1).

A connection's first frame is the join, the text ``* ROOM_SEAT``; every later
frame is relayed unchanged to the other seat of the room, so the only parsing
this protocol needs is of the join frame and of the endpoint's path.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from duorelay.protocols import CloseCode, ProtocolError

DEFAULT_NAMESPACE = "default"
"""The namespace of the bare ``/ws`` endpoint (docs/protocols.md section 1, rule 1)."""

MAX_ROOM_LENGTH = 128
"""Longest room name, in characters (code points), rule 2."""

JOIN_FORM = "* ROOM_SEAT with SEAT 0 or 1"

_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class Join:
    """A parsed join frame: the ``room`` name and the ``seat`` (0 or 1) claimed."""

    room: str
    seat: int


def namespace_for_path(path: str) -> str | None:
    """The namespace of a websocket path, or ``None`` if the path is not Kamon's.

    ``/ws`` is namespace ``default``; ``/ws/{ns}`` with ``ns`` matching
    ``[A-Za-z0-9._-]{1,64}`` is namespace ``ns`` (rule 1). Any other path,
    including ``/ws/`` and ``/ws/a/b``, gives ``None``.
    """
    if path == "/ws":
        return DEFAULT_NAMESPACE
    prefix, slash, namespace = path.partition("/ws/")
    if prefix or not slash or not _NAMESPACE.fullmatch(namespace):
        return None
    return namespace


def parse_join(frame: str | bytes) -> Join:
    """Parse a connection's first frame as a join (rule 2).

    The frame must be text of the form ``* ROOM_SEAT``: ``SEAT`` is ``0`` or
    ``1``; ``ROOM`` is everything between ``* `` and the last ``_``, 1 to 128
    characters with no control characters (Unicode category Cc); spaces,
    underscores and any other characters are allowed.

    Raises :class:`ProtocolError` with close code 4400 and a reason naming what
    is wrong and the expected form.
    """
    if not isinstance(frame, str):
        raise _bad_join("the join must be a text frame")
    if not frame.startswith("* "):
        raise _bad_join('the join must start with "* "')
    room, underscore, seat = frame[2:].rpartition("_")
    if not underscore:
        raise _bad_join("the join has no _SEAT")
    if seat not in ("0", "1"):
        raise _bad_join("the seat must be 0 or 1")
    if not room:
        raise _bad_join("the room name is empty")
    if len(room) > MAX_ROOM_LENGTH:
        raise _bad_join(f"the room name is over {MAX_ROOM_LENGTH} characters")
    if any(unicodedata.category(char) == "Cc" for char in room):
        raise _bad_join("the room name has a control character")
    return Join(room=room, seat=int(seat))


def _bad_join(problem: str) -> ProtocolError:
    return ProtocolError(CloseCode.BAD_REQUEST, f"bad join: {problem}; expected {JOIN_FORM}")
