"""Mailboxes of a connection: its outbox, and the inbox for senders that cannot wait.

Each connection owns one *outbox*: a bounded memory channel whose receive end
belongs to its writer task and whose send end is lent to whoever may address
the connection (:attr:`duorelay.core.session.Session.outbox`). Closing the
send end is how "this receiver is gone" is signalled.

An :class:`Inbox` sits in front of the outbox for senders that must never
wait (the backplane's drain task serves every connection of the process); the
session's pump task moves its frames into the outbox in order
(:meth:`duorelay.core.session.Session.open_inbox`).
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

import trio

from duorelay.transport import Frame

Outbox: TypeAlias = trio.MemorySendChannel[Frame]
"""The send end of a connection's outbox (:attr:`~duorelay.core.session.Session.outbox`)."""


class FrameSink(Protocol):
    """Where frames for a peer go: its outbox (a bounded memory channel), or a
    stand-in for a peer on another process."""

    def send_nowait(self, frame: Frame) -> None: ...

    async def send(self, frame: Frame) -> None: ...


class Inbox:
    """Frames for one connection from a sender that cannot wait (the backplane's
    drain task, which serves every connection of the process).

    :meth:`send_nowait` puts a frame straight into the outbox when it has room
    and no earlier frame is still waiting here; else into this inbox's
    channel (bounded), from which the session's pump moves frames into the
    outbox in order. ``waiting`` counts the frames in the channel or in the
    pump's hands, so a later frame never overtakes an earlier one.
    """

    def __init__(self, outbox: Outbox, channel: Outbox) -> None:
        self._outbox = outbox
        self._channel = channel
        self.waiting = 0

    def send_nowait(self, frame: Frame) -> None:
        """Queue ``frame`` for the client. Raises ``trio.WouldBlock`` when the
        inbox is full (the caller decides: 4430), ``trio.ClosedResourceError``
        once the connection's handler has ended."""
        if not self.waiting:
            try:
                self._outbox.send_nowait(frame)
                return
            except trio.WouldBlock:
                pass
        self._channel.send_nowait(frame)
        self.waiting += 1

    async def send(self, frame: Frame) -> None:
        """:meth:`send_nowait` (an inbox never waits)."""
        self.send_nowait(frame)

    def close(self) -> None:
        self._channel.close()
