"""The XO game's websocket, on ``/ws`` beside the Kamon relay (docs/xogame.md, docs/protocols.md
section 1).

``/ws`` (not ``/ws/{namespace}``) serves two protocols, told apart by the
connection's first frame, read within ``join_timeout`` seconds (else 4408): a
text frame that starts with ``{`` (after white space) is the XO protocol
(:meth:`XoSockets.serve`); anything else goes to the Kamon relay, which
closes 4400 unless it is a join ``* ROOM_SEAT``.

An XO connection: ``authorize`` with a per-game token (refused: ``{"ok":
false}`` then close 1008); then ``command`` moves, each submitted to the game's
match task (:class:`~duorelay.referee.matches.Matches`): the events are stored,
then broadcast to every connection of the game (the sender's included), then
the sender gets its reply. A refused command stores and sends nothing but the
reply ``{"ok": false, "error"}``; the connection stays. ``close``: close 1000.

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

import logging
from collections.abc import Callable
from typing import Any

import trio

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

log = logging.getLogger("duorelay")

TOO_SLOW = "too slow: the outbox is full"
INVALID_TOKEN = "Invalid token"


def address(game: str) -> str:
    """The backplane address of game ``game`` (32 hex)."""
    return f"xo:{game}"


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
                _push(session, wire.reply(str(bad)))
            else:
                if isinstance(message, wire.Close):
                    return
                if isinstance(message, wire.Command):
                    _push(session, wire.reply(wire.BAD_GAME))
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

        async with matches.watch(game, listener) as match:
            if match is None or player not in match.state.players:
                reason = "Game not found" if match is None else wire.BAD_PLAYER
                _push(session, wire.reply(reason))
                session.close(wire.POLICY_VIOLATION, reason, flush=True)
                return
            session.where = {"protocol": "xo", "game": game}
            try:
                await self._join(session, game)
                _push(session, wire.reply())
                session.log("authorized")
                while True:
                    await self._command(session, player, game, await session.receive())
            except _Closed:
                return
            finally:
                self._leave(session, game)

    async def _command(self, session: Session, player: str, game: str, frame: str | bytes) -> None:
        try:
            message = wire.decode(frame)
        except wire.BadMessage as bad:
            _push(session, wire.reply(str(bad)))
            return
        if isinstance(message, wire.Close):
            raise _Closed
        if isinstance(message, wire.Authorize):
            _push(session, wire.reply("Already authorized"))
            return
        if message.game_uuid != game:
            _push(session, wire.reply(wire.BAD_GAME))
            return
        if message.player_uuid != player or message.player != player:
            _push(session, wire.reply(wire.BAD_PLAYER))
            return
        if message.name != "move":
            _push(session, wire.reply(f"Unknown command {message.name[:40]!r}"))
            return

        def reply(outcome: Decision[Any] | Refused) -> None:
            if isinstance(outcome, Refused):
                _push(session, wire.reply(outcome.reason))
            else:
                self.publish(game, outcome)
                _push(session, wire.reply())

        matches = self.service.matches
        command = MoveCommand(player, message.sequence, message.cell)
        if matches is None or not await matches.submit(game, command, reply):
            _push(session, wire.reply("Game not found"))

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
