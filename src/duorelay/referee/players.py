"""A registered player as the referee sees it, and the two ways to address it.

Players are not tasks of the match (docs/architecture.md, "One match"). A
player's connection is a :class:`~duorelay.core.session.Session` whose
handler is its *reader*: it decodes each JSON value the client sends and
hands it to :meth:`RemotePlayer.deliver`. The referee addresses a player in
one of two ways, each bounded by the time per call (docs/santorini.md
section 5):

- :func:`tell`: put a message in the player's outbox (its connection's writer
  sends it); no reply;
- :meth:`Asker.ask`: the same, and then wait for the reply in the match's
  inbox. While a request is outstanding the player's reader knows where its
  reply goes (the asking match's inbox, with the request's number).

A client may be one value ahead (the reference reads replies from a buffered
port, so a reply sent before its request counts): a value that arrives when
nothing was asked is held, and answers the next request at once. A second
one breaks the protocol and ends that connection, without disturbing any
match; so a player holds at most one value of at most ``santorini_max_value``
bytes.

A player is asked at most once at a time, so a match's inbox never holds more
than the reply it waits for and perhaps one stale reply (which arrived just
as its request timed out, and is dropped): :data:`INBOX_SIZE` is a bound by
construction, and the reader's ``send_nowait`` never finds it full.

A player whose connection ended (:attr:`RemotePlayer.left`) is judged when
the referee next addresses it: it then misbehaves (section 5, "closed
connection").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from duorelay.core.mailboxes import FrameSink
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import santorini as wire

INBOX_SIZE: Final = 2
"""Replies a match's inbox holds: the one awaited and at most one stale one."""


class Connection(Protocol):
    """What the referee uses of a player's connection: a
    :class:`~duorelay.core.session.Session`."""

    @property
    def outbox(self) -> FrameSink: ...

    def close(self, code: int, reason: str, *, flush: bool = False) -> None: ...


class Misbehaved(Exception):
    """``player`` broke the protocol or the rules, or took too long (section 5).

    ``reason`` says how, for the log and the event log; ``code`` is the close
    code the connection is closed with (for TCP it only appears in the log).
    """

    def __init__(self, player: RemotePlayer, reason: str, code: int = CloseCode.BAD_REQUEST):
        super().__init__(player.name, reason)
        self.player = player
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class Reply:
    """What a reader puts in a match's inbox: ``value`` (a decoded JSON value, or
    ``None`` when the connection ended instead: see ``left``) answering request
    ``number`` of ``player``; ``at`` is ``trio.current_time()`` when it was read."""

    player: RemotePlayer
    number: int
    value: object
    left: bool
    at: float


class RemotePlayer:
    """One registered player: ``name`` (after any renaming), its ``connection``,
    and where its next reply goes.

    ``left`` is ``None`` while its connection is up, else why it ended (set by
    the reader as it ends, or by the referee closing it).
    """

    def __init__(self, name: str, connection: Connection) -> None:
        self.name = name
        self.connection = connection
        self.left: str | None = None
        self._numbers = itertools.count(1)
        self._asked: tuple[trio.MemorySendChannel[Reply], int] | None = None
        self._ahead: tuple[object, float] | None = None

    def __repr__(self) -> str:
        return f"<RemotePlayer {self.name!r}>"

    # -- the reader's side ------------------------------------------------------------

    def deliver(self, value: object) -> None:
        """Hand the client's next value to the match that asked for it; the reader calls it.

        With nothing asked, the value is held for the next request. Raises
        :class:`~duorelay.protocols.ProtocolError` (400) when one is held
        already: the reader lets it end the connection.
        """
        if self._asked is None:
            if self._ahead is not None:
                raise ProtocolError(CloseCode.BAD_REQUEST, "sent values nobody asked for")
            self._ahead = (value, trio.current_time())
            return
        inbox, number = self._asked
        self._asked = None
        inbox.send_nowait(Reply(self, number, value, False, trio.current_time()))

    def leave(self, reason: str) -> None:
        """The connection is over (the first reason is kept); a match waiting for
        this player's reply is told at once. Synchronous; the reader calls it as it ends."""
        if self.left is None:
            self.left = reason
        if self._asked is not None:
            inbox, number = self._asked
            self._asked = None
            inbox.send_nowait(Reply(self, number, None, True, trio.current_time()))

    # -- the referee's side -----------------------------------------------------------

    def expel(self, misbehaved: Misbehaved) -> None:
        """Close this player's connection for ``misbehaved`` (no flush: a cheater is
        told nothing more, section 5)."""
        self.leave(misbehaved.reason)
        self.connection.close(misbehaved.code, misbehaved.reason)

    def _expect(self, inbox: trio.MemorySendChannel[Reply]) -> int:
        """Route the next value to ``inbox`` as the reply to a new request; its number.
        A value held from before is the reply at once."""
        number = next(self._numbers)
        self._asked = (inbox, number)
        if self._ahead is not None:
            value, _ = self._ahead
            self._ahead = None
            self.deliver(value)
        return number

    def _withdraw(self) -> None:
        self._asked = None


async def tell(player: RemotePlayer, message: object, time_limit: float) -> None:
    """Send ``message`` (a JSON value) to ``player``; it replies nothing.

    Waits for room in the player's outbox for at most ``time_limit`` seconds.
    Raises :class:`Misbehaved` if its connection is gone or it does not read
    (its outbox stays full).
    """
    if player.left is not None:
        raise Misbehaved(player, player.left)
    with trio.move_on_after(time_limit):
        try:
            await player.connection.outbox.send(wire.encode(message))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise Misbehaved(player, player.left or "connection closed") from None
        return
    raise Misbehaved(player, f"did not read for {time_limit:g} s", CloseCode.TIMEOUT)


class Asker:
    """The inbox of one match and the asking of its players.

    The match (its task) owns both ends of the inbox; :meth:`close` closes them.
    """

    def __init__(self, time_limit: float) -> None:
        self.time_limit = time_limit
        self._send, self._receive = trio.open_memory_channel[Reply](INBOX_SIZE)

    async def ask(self, player: RemotePlayer, message: object) -> tuple[object, float]:
        """Send ``message`` to ``player`` and wait for its reply: ``(value, seconds)``,
        the seconds from handing the request over to reading the reply.

        The whole call (room in the outbox, then the reply) is bounded by
        ``time_limit`` seconds. Raises :class:`Misbehaved` when the player's
        connection is gone or ends before it replies, or the time is up; the
        request is then withdrawn, and a reply that comes later ends the
        player's connection (:meth:`RemotePlayer.deliver`).
        """
        if player.left is not None:
            raise Misbehaved(player, player.left)
        started = trio.current_time()
        number = player._expect(self._send)
        try:
            with trio.move_on_after(self.time_limit):
                try:
                    await player.connection.outbox.send(wire.encode(message))
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    raise Misbehaved(player, player.left or "connection closed") from None
                while True:
                    reply = await self._receive.receive()
                    if reply.player is player and reply.number == number:
                        break  # else a stale reply to a request that timed out
                if reply.left:
                    raise Misbehaved(player, player.left or "connection closed")
                return reply.value, reply.at - started
            raise Misbehaved(player, f"no reply within {self.time_limit:g} s", CloseCode.TIMEOUT)
        finally:
            player._withdraw()

    def close(self) -> None:
        """Close both ends of the inbox; synchronous."""
        self._send.close()
        self._receive.close()
