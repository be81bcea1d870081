"""Sans-IO wire protocols: parse and build frames; no trio, no Quart, no sockets.

Each protocol has its own module. This package also holds what all of them share:
the close codes of docs/protocols.md and :class:`ProtocolError`, the way a parser says
"close this connection with this code and reason".
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Websocket close codes sent by duorelay (docs/protocols.md, close code table).

    1000-1013 are RFC 6455 section 7.4.1 codes; 4000-4999 are the application
    range of RFC 6455 section 7.4.2.
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    BAD_REQUEST = 4400
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    TIMEOUT = 4408
    CONFLICT = 4409
    GONE = 4410
    LOCKED = 4423
    TOO_MANY = 4429
    TOO_SLOW = 4430


class ProtocolError(Exception):
    """A client broke the protocol: close its connection with ``code`` and ``reason``.

    ``reason`` is short and human-readable; RFC 6455 section 5.5 limits a close
    frame's reason to 123 bytes of UTF-8, and :attr:`reason` is cut to fit.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = clip_reason(reason)

    def __str__(self) -> str:
        return f"{int(self.code)} {self.reason}"


MAX_REASON_BYTES = 123


def clip_reason(reason: str) -> str:
    """Cut ``reason`` to at most 123 bytes of UTF-8 (RFC 6455 section 5.5)."""
    encoded = reason.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def too_big(frame: str | bytes, limit: int) -> bool:
    """Whether ``frame`` is over ``limit`` bytes; text counts its UTF-8 length.

    Text is encoded only when its length alone cannot decide (a code point is
    1 to 4 bytes of UTF-8), so the common small frame costs no copy.
    """
    size = len(frame)
    if isinstance(frame, bytes) or size > limit:
        return size > limit
    return size * 4 > limit and len(frame.encode()) > limit


def payload_size(frame: str | bytes) -> int:
    """A frame's payload size in bytes; text counts its UTF-8 length.

    ``str.isascii`` is O(1) in CPython, so ASCII text costs no encode.
    """
    if isinstance(frame, bytes) or frame.isascii():
        return len(frame)
    return len(frame.encode())
