"""Built-in Santorini players (bots), and the course's client harness.

A :class:`Bot` connects over TCP, registers its name, and answers the
server's requests (docs/santorini.md sections 2 and 3) until the Results
arrive or the server closes the connection. Its kind (the course's
``xclients`` kinds, section 6):

- ``good``: plays by the rules, deterministically (:func:`good_place`,
  :func:`good_action`), so a tournament of good bots always has the same
  results;
- ``breaker``: places like a good bot, then, on its first turn, moves the
  opponent's second worker (an illegal move: the example of docs/santorini.md);
- ``infinite``: registers, then never answers (it times out).

:func:`run_clients` plays the players of a client configuration
(``{"players": [[Kind, Name, Path], ...], "observers": [...], "ip", "port"}``)
against a server: ``python -m duorelay santorini-clients``. ``Path`` names the
reference's player module and is ignored: every player is a built-in bot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import trio

from duorelay.games import santorini as rules
from duorelay.games.base import Player
from duorelay.protocols import santorini as wire

log = logging.getLogger("duorelay")

MAX_VALUE: Final = 1 << 16
"""Largest value a bot accepts from the server, in bytes."""

CORNERS: Final = (rules.Place(0, 0), rules.Place(5, 5), rules.Place(0, 5), rules.Place(5, 0))


class Kind(Enum):
    """A kind of player of the course's client configuration."""

    GOOD = "good"
    BREAKER = "breaker"
    INFINITE = "infinite"


NO_REPLY: Final = object()
"""What a strategy returns to leave a request unanswered."""


def good_place(workers: Sequence[tuple[str, rules.Place]]) -> rules.Place:
    """The first free corner in the order north-west, south-east, south-west,
    north-east; then the first free place row by row."""
    taken = {place for _, place in workers}
    others = (rules.Place(x, y) for y in range(rules.SIZE) for x in range(rules.SIZE))
    return next(place for place in (*CORNERS, *others) if place not in taken)


def good_action(board: rules.Board, me: str) -> rules.Action:
    """A winning move if there is one; else the last move-and-build of
    :func:`duorelay.games.santorini.legal_moves` (worker 1's first, then worker
    2's, each in neighbour order); else giving up."""
    opponent = next(name[:-1] for name, _ in board.workers if name[:-1] != me)
    state = rules.state_from_board(board, (me, opponent), Player.FIRST)
    actions = [move for move in rules.legal_moves(state) if not isinstance(move, rules.Place)]
    wins = [action for action in actions if isinstance(action, rules.WinningMove)]
    builds = [action for action in actions if isinstance(action, rules.MoveBuild)]
    return wins[0] if wins else builds[-1] if builds else rules.GiveUp(me)


def breaker_action(board: rules.Board, me: str) -> rules.Action:
    """Move the opponent's second worker south and build north: never legal."""
    opponent = next(name[:-1] for name, _ in board.workers if name[:-1] != me)
    return rules.MoveBuild(f"{opponent}2", 0, 1, 0, -1)


@dataclass
class Bot:
    """One player of ``kind`` named ``name`` (renamed by ``playing-as``).

    ``received`` lists every value the server sent, in order; ``results`` the
    Results, once received.
    """

    name: str
    kind: Kind = Kind.GOOD
    received: list[object] = field(default_factory=list)
    results: list[wire.Result] | None = None

    def place(self, request: wire.PlacementRequest) -> object:
        """The reply to a placement request (a JSON value), or :data:`NO_REPLY`."""
        if self.kind is Kind.INFINITE:
            return NO_REPLY
        place = good_place(request.workers)
        return [place.x, place.y]

    def turn(self, request: wire.TakeTurn) -> object:
        """The reply to a take-turn request (a JSON value), or :data:`NO_REPLY`."""
        if self.kind is Kind.INFINITE:
            return NO_REPLY
        if self.kind is Kind.BREAKER:
            return wire.encode_action(breaker_action(request.board, self.name))
        return wire.encode_action(good_action(request.board, self.name))

    async def send(self, stream: trio.SocketStream, value: object) -> None:
        """Write one value (followed by a newline)."""
        await stream.send_all(wire.encode(value).encode())

    async def register(self, stream: trio.SocketStream) -> None:
        """Send the name."""
        await self.send(stream, self.name)

    async def play(self, stream: trio.SocketStream) -> list[wire.Result] | None:
        """Answer the server until the Results (returned) or the end of the stream
        (``None``). Raises :class:`~duorelay.protocols.santorini.SantoriniError` for
        a message that is not of the protocol."""
        values = wire.JsonStream(MAX_VALUE)
        while True:
            value = values.next_value()
            if value is wire.END:
                return None
            if value is wire.NEED_DATA:
                try:
                    values.receive_data(await stream.receive_some())
                except trio.BrokenResourceError:
                    values.receive_data(b"")
                continue
            self.received.append(value)
            message = wire.classify(value)
            reply: object = NO_REPLY
            if isinstance(message, wire.PlayingAs):
                self.name = message.name
            elif isinstance(message, wire.PlacementRequest):
                reply = self.place(message)
            elif isinstance(message, wire.TakeTurn):
                reply = self.turn(message)
            elif isinstance(message, wire.Results):
                self.results = list(message.results)
                return self.results
            if reply is not NO_REPLY:
                await self.send(stream, reply)


@dataclass(frozen=True, slots=True)
class ClientsConfig:
    """The course's client configuration (docs/santorini.md section 6)."""

    players: tuple[tuple[Kind, str], ...]
    observers: int
    ip: str
    port: int

    @classmethod
    def parse(cls, value: object) -> ClientsConfig:
        """From the decoded JSON; ``ValueError`` naming what is wrong."""
        if not isinstance(value, Mapping):
            raise ValueError("the configuration is a JSON object")
        players = value.get("players")
        if not isinstance(players, list) or not players:
            raise ValueError('"players" is a non-empty list of [Kind, Name, Path]')
        parsed = []
        for entry in players:
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], str)):
                raise ValueError(f"a player is [Kind, Name, Path], not {entry!r}")
            try:
                kind = Kind(entry[0])
            except ValueError:
                raise ValueError(
                    f"a player's kind is good, breaker or infinite, not {entry[0]!r}"
                ) from None
            parsed.append((kind, entry[1]))
        observers = value.get("observers", [])
        ip, port = value.get("ip"), value.get("port")
        if not isinstance(observers, list):
            raise ValueError('"observers" is a list')
        if not isinstance(ip, str):
            raise ValueError('"ip" is a string')
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError('"port" is a TCP port number')
        return cls(tuple(parsed), len(observers), ip, port)


async def run_clients(config: ClientsConfig) -> list[Bot]:
    """Connect and register the players one after the other (in the order given),
    then let them all play; returns the bots once every connection has ended.

    Raises ``OSError`` if a player cannot connect (the others are closed first).
    """
    bots = [Bot(name, kind) for kind, name in config.players]
    streams: list[trio.SocketStream] = []
    try:
        for bot in bots:
            streams.append(await trio.open_tcp_stream(config.ip, config.port))
            await bot.register(streams[-1])
    except BaseException:  # the connected ones closed, then re-raised (Cancelled included)
        for stream in streams:
            await trio.aclose_forcefully(stream)
        raise
    async with trio.open_nursery() as nursery:
        for bot, stream in zip(bots, streams, strict=True):
            nursery.start_soon(_play, bot, stream)
    return bots


async def _play(bot: Bot, stream: trio.SocketStream) -> None:
    async with stream:
        try:
            await bot.play(stream)
        except (wire.SantoriniError, trio.BrokenResourceError) as error:
            log.warning("santorini client %s: %s", bot.name, error)
