"""The XO game's websocket, on ``/ws`` beside the Kamon relay (docs/xogame.md, docs/protocols.md
section 1).

``/ws`` (not ``/ws/{namespace}``) serves two protocols, told apart by the
connection's first frame, read within ``join_timeout`` seconds (else 4408): a
text frame that starts with ``{`` (after white space) is the XO protocol
(:meth:`XoSockets.serve`); anything else goes to the Kamon relay, which
closes 4400 unless it is a join ``* ROOM_SEAT``.

An XO connection: ``authorize`` with a per-game token (refused: ``{"ok":
false}`` then close 1008; the database unavailable: close 1013); then
``command`` moves, each submitted to the game's match task
(:class:`~duorelay.referee.matches.Matches`): the events are stored, then
broadcast to every connection of the game (the sender's included), then the
sender gets its reply. A refused command stores and sends nothing but the
reply ``{"ok": false, "error"}``; the connection stays. ``close``: close 1000.

One command at a time: the connection's reader waits for a command's reply
and for room for it in the connection's outbox before it reads the next frame,
so a client that sends faster than it reads is slowed down (its socket is no
longer read), never closed, and has at most one submission in its game's
match inbox. Broadcasts are pushed without waiting (by the match task): a
connection whose outbox and its reserve are full of them is closed 4430.

Across processes (a shared backplane, ``DUORELAY_REDIS_URL``): a process with
connections of a game listens to the address ``xo:{game}``; the process that
decided publishes each event's broadcast frame there
(:class:`~duorelay.protocols.cluster.Frame`), and a listener hands it to its
connections of that game and has its match state reloaded
(:meth:`~duorelay.referee.matches.Matches.refresh`). A broadcast the backplane
cannot queue is dropped (logged): those clients see the event on their next
fetch or reconnection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import trio
from sqlalchemy.exc import SQLAlchemyError

from duorelay.core.backplane import UNAVAILABLE, Backplane, BackplaneUnavailable
from duorelay.core.session import Handler, Session
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import xogame as wire
from duorelay.protocols.cluster import ClusterMessage, Frame
from duorelay.referee.matches import Decision, Match, Refused
from duorelay.referee.xo import BadToken, MoveCommand
from duorelay.relay.kamon import first_frame
from duorelay.services.xo import UNAVAILABLE as SERVICE_UNAVAILABLE
from duorelay.services.xo import ApiError, XoService
from duorelay.store.gateway import StoreClosed

log = logging.getLogger("duorelay")

TOO_SLOW = "too slow: the outbox is full"
INVALID_TOKEN = "Invalid token"


def address(game: str) -> str:
    """The backplane address of game ``game`` (32 hex)."""
    return f"xo:{game}"


async def _send(session: Session, frame: str) -> None:
    """Send ``frame`` (a reply) to the client, waiting for room in its outbox;
    nothing if the connection is ending."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await session.outbox.send(frame)


def _push(session: Session, frame: str) -> None:
    try:
        session.outbox.push(frame)
    except trio.WouldBlock:
        session.close(CloseCode.TOO_SLOW, TOO_SLOW)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the connection is ending


class XoSockets:
    """The XO websocket connections of one process, by game."""

    def __init__(self, service: XoService, backplane: Backplane) -> None:
        self.service = service
        self.backplane = backplane
        self.games: dict[str, set[Session]] = {}
        self._listening: dict[str, trio.Event] = {}
        service.published = self.publish

    async def sniff(self, session: Session, kamon: Handler) -> None:
        """Serve a ``/ws`` connection: XO if its first frame is a JSON object,
        else Kamon (``kamon`` takes the first frame as ``first``)."""
        first = await first_frame(session)
        if isinstance(first, str) and first.lstrip().startswith(wire.FIRST_FRAME_XO):
            await self.serve(session, first)
        else:
            await kamon(session, first=first)  # type: ignore[call-arg]

    async def serve(self, session: Session, frame: str | bytes) -> None:
        """The XO protocol, from its first ``frame`` until the client closes."""
        session.where = {"protocol": "xo"}
        while True:
            try:
                message = wire.decode(frame)
            except wire.BadMessage as bad:
                await _send(session, wire.reply(str(bad)))
            else:
                if isinstance(message, wire.Close):
                    return
                if isinstance(message, wire.Command):
                    await _send(session, wire.reply(wire.BAD_GAME))
                else:
                    await self._authorized(session, message)
                    return
            frame = await session.receive()

    async def _authorized(self, session: Session, authorize: wire.Authorize) -> None:
        try:
            _, matches, tokens = await self.service.ready()
            player, game = tokens.game(authorize.token)
        except ApiError:  # the database is unavailable
            _push(session, wire.reply(SERVICE_UNAVAILABLE))
            session.close(CloseCode.TRY_AGAIN_LATER, SERVICE_UNAVAILABLE, flush=True)
            return
        except BadToken:
            _push(session, wire.reply(INVALID_TOKEN))
            session.close(wire.POLICY_VIOLATION, INVALID_TOKEN, flush=True)
            return

        def listener(match: Match[Any], decision: Decision[Any]) -> None:
            for event in decision.events:
                _push(session, wire.broadcast(wire.event(game, event.seq, event.kind, event.data)))

        try:
            async with matches.watch(game, listener) as match:
                if match is None or player not in match.state.players:
                    reason = "Game not found" if match is None else wire.BAD_PLAYER
                    _push(session, wire.reply(reason))
                    session.close(wire.POLICY_VIOLATION, reason, flush=True)
                    return
                session.where = {"protocol": "xo", "game": game}
                try:
                    await self._join(session, game)
                    await _send(session, wire.reply())
                    session.log("authorized")
                    while True:
                        await self._command(session, player, game, await session.receive())
                except _Closed:
                    return
                finally:
                    self._leave(session, game)
        except (SQLAlchemyError, StoreClosed) as error:  # loading the game's state
            log.warning("xo: game %s: store error %s", game, str(error).splitlines()[0])
            _push(session, wire.reply(SERVICE_UNAVAILABLE))
            session.close(CloseCode.TRY_AGAIN_LATER, SERVICE_UNAVAILABLE, flush=True)

    async def _command(self, session: Session, player: str, game: str, frame: str | bytes) -> None:
        """Answer one frame of an authorized connection; returns once its reply
        is in the outbox (waiting for the match task's decision on a move)."""
        await _send(session, await self._answer(player, game, frame))

    async def _answer(self, player: str, game: str, frame: str | bytes) -> str:
        try:
            message = wire.decode(frame)
        except wire.BadMessage as bad:
            return wire.reply(str(bad))
        if isinstance(message, wire.Close):
            raise _Closed
        if isinstance(message, wire.Authorize):
            return wire.reply("Already authorized")
        if message.game_uuid != game:
            return wire.reply(wire.BAD_GAME)
        if message.player_uuid != player or message.player != player:
            return wire.reply(wire.BAD_PLAYER)
        if message.name != "move":
            return wire.reply(f"Unknown command {message.name[:40]!r}")

        decided = trio.Event()
        answer: list[str] = []

        def reply(outcome: Decision[Any] | Refused) -> None:
            if isinstance(outcome, Refused):
                answer.append(wire.reply(outcome.reason))
            else:
                self.publish(game, outcome)
                answer.append(wire.reply())
            decided.set()

        matches = self.service.matches
        command = MoveCommand(player, message.sequence, message.cell)
        try:
            if matches is None or not await matches.submit(game, command, reply):
                return wire.reply("Game not found")
        except (SQLAlchemyError, StoreClosed) as error:  # the match was not live: loading it
            log.warning("xo: game %s: store error %s", game, str(error).splitlines()[0])
            return wire.reply(SERVICE_UNAVAILABLE)
        await decided.wait()  # the broadcasts are in the outbox before the reply
        return answer[0]

    async def _join(self, session: Session, game: str) -> None:
        """Count ``session`` in ``game``; the first of its game listens to the
        backplane, the others wait for that (1013 if it failed)."""
        self.games.setdefault(game, set()).add(session)
        if not self.backplane.shared:
            return
        listening = self._listening.get(game)
        if listening is not None:
            await listening.wait()
            if game not in self._listening:
                raise ProtocolError(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
            return
        self._listening[game] = listening = trio.Event()
        try:
            with trio.move_on_after(session.settings.backplane_wait):
                await self.backplane.wait_available()
            await self.backplane.listen(address(game), self._deliver(game), self._lost(game))
        except BaseException as error:  # trio.Cancelled too: nobody listens
            if self._listening.get(game) is listening:
                del self._listening[game]
            if isinstance(error, BackplaneUnavailable):
                raise ProtocolError(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE) from None
            raise
        finally:
            listening.set()

    def _leave(self, session: Session, game: str) -> None:
        sessions = self.games.get(game)
        if sessions is None:
            return
        sessions.discard(session)
        if not sessions:
            del self.games[game]
            if self._listening.pop(game, None) is not None:
                self.backplane.unlisten(address(game))

    def _deliver(self, game: str) -> Callable[[bool, ClusterMessage], None]:
        def deliver(from_here: bool, message: ClusterMessage) -> None:
            if from_here or not isinstance(message, Frame) or not isinstance(message.data, str):
                return
            matches = self.service.matches
            if matches is not None:
                matches.refresh(game)
            for session in list(self.games.get(game, ())):
                _push(session, message.data)

        return deliver

    def _lost(self, game: str) -> Callable[[], None]:
        def lost() -> None:
            # Broadcasts may have been lost: the clients reconnect and fetch.
            for session in list(self.games.get(game, ())):
                session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)

        return lost

    def publish(self, game: str, decision: Decision[Any]) -> None:
        """Send ``decision``'s broadcasts to the other processes' connections of ``game``."""
        if not self.backplane.shared:
            return
        for event in decision.events:
            frame = wire.broadcast(wire.event(game, event.seq, event.kind, event.data))
            try:
                self.backplane.send_nowait(address(game), Frame(frame))
            except (BackplaneUnavailable, trio.WouldBlock) as error:
                log.warning("xo: game %s: broadcast %d not published: %r", game, event.seq, error)


class _Closed(Exception):
    """The client sent ``close``."""
