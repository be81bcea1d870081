"""The wire under a connection: what a session reads frames from and writes them to.

A *transport* is one client connection seen as an ordered stream of frames:
the ASGI websocket adapter (:mod:`duorelay.transport.asgi`) and the TCP JSON
value stream (:mod:`duorelay.transport.tcp`). Both have the face of
:class:`Transport`, which is all :class:`duorelay.core.session.Session` uses.
This package sits below :mod:`duorelay.core` (docs/architecture.md, "Layers"):
it defines the frame type and the "client went away" exception that every
transport raises, and :mod:`duorelay.core.session` imports them, never the
other way round.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

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


class Transport(Protocol):
    """What a session needs of the wire under it (docs/architecture.md, "One connection").

    - :attr:`client`: the peer's address, ``host:port``, for logs;
    - :meth:`accept`: complete the opening handshake; False if the client left first;
    - :meth:`receive`: the next frame, in order; :class:`Disconnected` once the
      client is gone; :class:`~duorelay.protocols.ProtocolError` for bytes that
      are no frame at all (a TCP stream that is not JSON);
    - :meth:`send`: write one frame;
    - :meth:`close`: end the connection from our side with ``code`` and ``reason``
      (a websocket close frame; for TCP, the end of our side of the stream);
    - :meth:`drain`: read and drop until the client is gone or quiet for
      ``quiet`` seconds.
    """

    @property
    def client(self) -> str: ...

    async def accept(self) -> bool: ...

    async def receive(self) -> Frame: ...

    async def send(self, frame: Frame) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def drain(self, quiet: float) -> None: ...
