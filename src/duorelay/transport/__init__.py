"""The wire under a connection: what a session reads frames from and writes them to.

A *transport* is one client connection seen as an ordered stream of frames:
the ASGI websocket adapter (:mod:`duorelay.transport.asgi`) today, a TCP JSON
stream later. This package sits below :mod:`duorelay.core` (docs/architecture.md,
"Layers"): it defines the frame type and the "client went away" exception that
every transport raises, and :mod:`duorelay.core.session` imports them, never
the other way round.
"""

from __future__ import annotations

from typing import TypeAlias

Frame: TypeAlias = str | bytes
"""A message: ``str`` for a text frame, ``bytes`` for a binary one."""


class Disconnected(Exception):
    """The client's side of the connection is gone (ASGI ``websocket.disconnect``).

    ``code`` is what the server under us reports: Hypercorn says 1000 after a
    close handshake, 1006 when the TCP connection ended without one.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
