"""One best-of-3 Santorini series between two players: the match task.

docs/santorini.md section 3 ("Order within one encounter"): ``other`` to
player one, then to player two; then games until a player has two wins. Each
game starts on an empty board; placement requests alternate one, two, one,
two; take-turn requests alternate starting with player one, in every game.
The rules are :mod:`duorelay.games.santorini`; the wire shapes
:mod:`duorelay.protocols.santorini`.

Task: :meth:`Series.run` is one task in the tournament's nursery
(docs/architecture.md, "One match"). It owns the series' inbox
(:class:`~duorelay.referee.players.Asker`, bounded), addresses the players
through their outboxes, and for every reply: decodes it, checks it with the
rules, hands the event to the event log
(:class:`~duorelay.referee.record.Recorder`: queued for its writer, not
awaited), and sends the next request. A game's end waits: its outcome and
every event before it are committed before the series asks anything more.
The players' connections are not its tasks: a player who times out,
disconnects, sends a wrong shape or an illegal move raises
:class:`~duorelay.referee.players.Misbehaved`, is closed (section 5), and
loses the series as ``[opponent, cheater, "irregular"]``; the series ends
at once. The series never abandons a request it sent: it is asking exactly one
player at any time, so when it ends no reply is outstanding and no player's
wire is out of step. It ends when the series is decided, or when cancelled
with the tournament (its ``finally`` closes the inbox).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import trio

from duorelay.games import santorini as rules
from duorelay.games.base import IllegalMove
from duorelay.protocols import santorini as wire
from duorelay.protocols.santorini import BadMessage, Result
from duorelay.referee.players import Asker, Misbehaved, RemotePlayer, tell
from duorelay.referee.record import Recorder

log = logging.getLogger("duorelay")

WINS: int = 2
"""Games a player must win to win the series (best of 3, section 3)."""


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """How a series ended: its ``result`` and, when someone misbehaved, the ``cheater``."""

    result: Result
    cheater: RemotePlayer | None = None


class Series:
    """A best-of-3 series of ``one`` (player one) against ``two``.

    ``number`` is its place in the schedule (1-based); ``tournament_id`` the
    tournament's row, if stored. After :meth:`run`, :attr:`outcome` holds the
    :class:`SeriesResult`; :attr:`done` is set when the task ends, however.
    """

    def __init__(
        self,
        one: RemotePlayer,
        two: RemotePlayer,
        *,
        number: int,
        time_per_call: float,
        recorder: Recorder,
        tournament_id: int | None = None,
    ) -> None:
        self.players = (one, two)
        self.number = number
        self.time_per_call = time_per_call
        self.recorder = recorder
        self.tournament_id = tournament_id
        self.outcome: SeriesResult | None = None
        self.done = trio.Event()
        self._asker = Asker(time_per_call)

    async def run(self) -> None:
        """Play the series; sets :attr:`outcome`, then :attr:`done`."""
        one, two = self.players
        try:
            try:
                await tell(one, two.name, self.time_per_call)
                await tell(two, one.name, self.time_per_call)
                wins = {one: 0, two: 0}
                game = 0
                while max(wins.values()) < WINS:
                    game += 1
                    wins[await self._game(game)] += 1
                winner = one if wins[one] == WINS else two
                self.outcome = SeriesResult(Result(winner.name, self._other(winner).name))
            except Misbehaved as misbehaved:
                cheater = misbehaved.player
                cheater.expel(misbehaved)
                log.info(
                    "santorini: %s misbehaved: %s",
                    cheater.name,
                    misbehaved.reason,
                    extra={"event": "misbehaved", "player": cheater.name},
                )
                winner = self._other(cheater)
                self.outcome = SeriesResult(Result(winner.name, cheater.name, True), cheater)
        finally:
            self._asker.close()
            self.done.set()

    def _other(self, player: RemotePlayer) -> RemotePlayer:
        one, two = self.players
        return two if player is one else one

    async def _game(self, game: int) -> RemotePlayer:
        """Play one game; its winner. Raises :class:`Misbehaved` (after storing the
        game's irregular outcome) when a player misbehaves."""
        one, two = self.players
        names = [one.name, two.name]
        match_id = uuid.uuid4().hex
        await self.recorder.game_started(match_id, self.tournament_id, names, self.number, game)
        state = rules.new_game(one.name, two.name)
        seq = 0
        board: object = None  # the board after the last action: the next request's
        where = {"series": self.number, "game": game}
        try:
            while (outcome := rules.outcome(state)) is None:
                player = self.players[state.to_move.index]
                placing = rules.is_placing(state)
                if placing:
                    request: object = rules.encode_placements(state)
                else:
                    request = board if board is not None else rules.encode_board(state)
                value, seconds = await self._asker.ask(player, request)
                try:
                    if placing:
                        place = wire.decode_place(value)
                        worker = f"{player.name}{len(state.workers) // 2 + 1}"
                        state = rules.apply(state, place)
                        kind = "placement"
                        data: dict[str, object] = {
                            "player": player.name,
                            "worker": worker,
                            "place": [place.x, place.y],
                        }
                    else:
                        action = wire.decode_action(value)
                        state = rules.apply(state, action)
                        kind = "action"
                        board = rules.encode_board(state)
                        data = {
                            "player": player.name,
                            "action": wire.encode_action(action),
                            "board": board,
                        }
                except (BadMessage, IllegalMove) as error:
                    raise Misbehaved(player, error.reason) from None
                seq += 1
                data["ms"] = round(seconds * 1000)
                await self.recorder.event(match_id, seq, kind, data)
        except Misbehaved as misbehaved:
            loser = misbehaved.player
            result = {
                "winner": self._other(loser).name,
                "loser": loser.name,
                "ending": "irregular",
                "reason": misbehaved.reason,
                **where,
            }
            await self.recorder.game_over(match_id, seq + 1, result)
            raise
        assert outcome.winner is not None  # Santorini has no draws
        winner = self.players[outcome.winner.index]
        result = {
            "winner": winner.name,
            "loser": self._other(winner).name,
            "ending": outcome.ending.value,
            **where,
        }
        await self.recorder.game_over(match_id, seq + 1, result)
        return winner
