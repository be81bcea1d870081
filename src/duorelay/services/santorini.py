"""The Santorini tournament server: TCP connections, the lobby, the tournament loop.

The front-end of docs/santorini.md: it binds the TCP JSON stream
(:mod:`duorelay.transport.tcp`) and the Santorini messages
(:mod:`duorelay.protocols.santorini`) to the referee
(:mod:`duorelay.referee.tournament`) and the store. The same service runs as
the course's server command (``python -m duorelay santorini``) and beside
the web server (``DUORELAY_SANTORINI_PORT``).

Task tree::

    owner's nursery                (the CLI's trio.run, or the app's serving nursery)
     └─ SantoriniServer.run
         ├─ connections nursery    one task per TCP connection (trio.serve_tcp's
         │   └─ Session.run         handler_nursery), outliving the listener:
         │       ├─ (body) reader   name, then each value -> RemotePlayer.deliver
         │       └─ writer          outbox -> socket
         └─ listening nursery      trio.serve_tcp's listener task(s)
             (body) the loop       lobby -> Tournament.run -> tournament nursery
                                     └─ series task (one at a time)

Registration (section 2): a connection sends its name within
``santorini_registration_timeout`` seconds (else it is closed); a name that
is not ``^[a-z]+$`` closes it. The player then waits in the *lobby*, a bounded
channel of ``santorini_max_players`` registrations (a registration that finds
it full, or closed, is closed). The loop takes players from the lobby,
waiting at most ``waiting_for`` seconds for each next one (section 6); then,
with at least ``min_players`` (players whose connection already ended do not
count), it runs a tournament. With ``repeat``, it goes on: registrations that
came during a tournament wait in the lobby for the next one, and too few
players keep waiting. Without, it ends after one tournament, or when too few
came (the lobby is closed then, and so is every connection).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from duorelay.core.session import CLOSE_TIMEOUT, Session
from duorelay.observability import Stats
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import santorini as wire
from duorelay.protocols.santorini import Result
from duorelay.referee.players import RemotePlayer
from duorelay.referee.record import Recorder
from duorelay.referee.tournament import Tournament
from duorelay.settings import Settings
from duorelay.transport import Disconnected
from duorelay.transport.tcp import TcpTransport

log = logging.getLogger("duorelay")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the course's server configuration says (section 6), plus where to listen.

    ``min_players`` to start a tournament; ``waiting_for`` seconds to wait for
    each next registration; ``repeat``: run tournaments until cancelled;
    ``host`` and ``port`` (0: any free port) to listen on.
    """

    min_players: int
    waiting_for: float
    repeat: bool
    port: int
    host: str = "127.0.0.1"


def _value(frame: str | bytes) -> object:
    try:
        return wire.loads(frame if isinstance(frame, str) else frame.decode())
    except (wire.NotJson, UnicodeDecodeError) as error:
        raise ProtocolError(CloseCode.BAD_REQUEST, str(error)) from None


class SantoriniServer:
    """The Santorini service of one process: listener, connections, lobby, tournaments.

    ``on_results`` is called (synchronously) with each tournament's Results.
    :attr:`address` is ``(host, port)`` once
    listening. :attr:`sessions` holds the live connections.
    """

    def __init__(
        self,
        config: ServerConfig,
        settings: Settings,
        stats: Stats,
        recorder: Recorder,
        on_results: Callable[[list[Result]], None] = lambda results: None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.stats = stats
        self.recorder = recorder
        self.on_results = on_results
        self.sessions: set[Session] = set()
        self.address: tuple[str, int] | None = None
        self.tournaments = 0
        self._lobby_send, self._lobby = trio.open_memory_channel[RemotePlayer](
            settings.santorini_max_players
        )

    async def run(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> bool:
        """Listen, and run tournaments; ``task_status.started`` with the address.

        Returns (only without ``repeat``) whether a tournament was played,
        once every connection has ended (each is closed, and given at most
        ``CLOSE_TIMEOUT`` seconds to see its close). Cancelled, it stops
        listening and cancels every connection and the tournament.
        """
        played = False
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as listening:
                listeners = await listening.start(
                    _serve_tcp,
                    self._serve_connection,
                    self.config.port,
                    self.config.host,
                    connections,
                )
                host, port, *_ = listeners[0].socket.getsockname()
                self.address = (host, port)
                log.info("santorini: listening on %s:%d", host, port)
                task_status.started(self.address)
                played = await self._loop()
                listening.cancel_scope.cancel()
            self._lobby_send.close()
            for session in list(self.sessions):
                session.close(CloseCode.GOING_AWAY, "server done", flush=True)
            connections.cancel_scope.deadline = trio.current_time() + CLOSE_TIMEOUT + 1
        return played

    async def _loop(self) -> bool:
        waiting: list[RemotePlayer] = []
        while True:
            waiting = await self._collect(waiting)
            if len(waiting) < self.config.min_players:
                log.info(
                    "santorini: no tournament: %d players registered, %d needed",
                    len(waiting),
                    self.config.min_players,
                )
                if not self.config.repeat:
                    return False
                continue
            if not self.config.repeat:
                self._lobby_send.close()  # later registrations are refused
            players, waiting = waiting, []
            tournament = Tournament(
                players,
                time_per_call=self.settings.santorini_time_per_call,
                recorder=self.recorder,
            )
            try:
                results = await tournament.run()
            except Exception:  # a bug or the store out of reach: logged; the next one may work
                log.exception("santorini: the tournament failed")
                if not self.config.repeat:
                    raise
                continue
            self.tournaments += 1
            log.info(
                "santorini: tournament %s over: %s",
                tournament.id if tournament.id is not None else "-",
                wire.results_message(results),
                extra={"event": "tournament-end", "tournament": tournament.id},
            )
            self.on_results(results)
            if not self.config.repeat:
                return True

    async def _collect(self, waiting: list[RemotePlayer]) -> list[RemotePlayer]:
        """Take registrations until ``waiting_for`` seconds pass without one, or the
        tournament is full; those still connected, in registration order."""
        players = list(waiting)
        while len(players) < self.settings.santorini_max_players:
            with trio.move_on_after(self.config.waiting_for):
                players.append(await self._lobby.receive())
                players = [player for player in players if player.left is None]
                continue
            break
        return [player for player in players if player.left is None]

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        """One TCP connection, served as a session until it ends (trio closes the stream).

        Not rate-limited: a player only answers the referee's requests, at the
        referee's pace, and a value sent unasked beyond one closes it
        (docs/santorini.md); ``DUORELAY_MAX_RATE`` would only slow a fast,
        well-behaved bot down."""
        session = Session(
            TcpTransport(stream, self.settings.santorini_max_value),
            self.settings,
            self.stats,
            rate_limited=False,
        )
        self.sessions.add(session)
        try:
            await session.run(self._player)
        finally:
            self.sessions.discard(session)

    async def _player(self, session: Session) -> None:
        """The connection's reader: registration, then every value to the referee."""
        timeout = self.settings.santorini_registration_timeout
        frame: str | bytes | None = None
        with trio.move_on_after(timeout):
            frame = await session.receive()
        if frame is None:
            raise ProtocolError(CloseCode.TIMEOUT, f"no name within {timeout:g} s")
        try:
            name = wire.decode_name(_value(frame))
        except wire.BadMessage as error:
            raise ProtocolError(CloseCode.BAD_REQUEST, error.reason) from None
        player = RemotePlayer(name, session)
        session.where = {"player": name}
        try:
            self._lobby_send.send_nowait(player)
        except trio.WouldBlock:
            raise ProtocolError(CloseCode.TOO_MANY, "too many players waiting") from None
        except trio.ClosedResourceError:
            raise ProtocolError(CloseCode.GONE, "registration is closed") from None
        session.log("registered")
        try:
            while True:
                player.deliver(_value(await session.receive()))
        except Disconnected:
            player.leave("closed the connection")
            raise
        except ProtocolError as error:
            player.leave(error.reason)
            raise
        finally:
            player.leave("closed by the server")


async def _serve_tcp(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    port: int,
    host: str,
    handler_nursery: trio.Nursery,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``trio.serve_tcp`` with its connections' tasks in ``handler_nursery``."""
    await trio.serve_tcp(
        handler,
        port,
        host=host,
        handler_nursery=handler_nursery,
        task_status=task_status,
    )
