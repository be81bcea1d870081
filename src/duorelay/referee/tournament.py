"""A Santorini tournament: round robin, the misbehaviour policy, the results.

docs/santorini.md section 5, with the reference's rules where the pages are
silent:

- **Names** (section 2): in registration order, a player whose name is taken
  is renamed: its name plus "a"s until it is one longer than the longest name
  so far (:func:`unique_names`), and told ``["playing-as", NewName]``. A
  player that cannot be told is dropped before the tournament starts.
- **Schedule** (:func:`schedule`): the first player against each later one,
  then the second against each later one, and so on; each pairing a best-of-3
  series (:class:`~duorelay.referee.santorini.Series`) with the earlier
  player as player one.
- **Policy** (:class:`Standings`): a misbehaving player is removed from all
  future encounters; the breaking encounter is ``[opponent, cheater,
  "irregular"]``; its past wins are counted for the opponents (``[opponent,
  cheater]``), except wins over players who misbehaved themselves, which are
  dropped.
- **End**: every player still connected that did not misbehave receives the
  Results (in schedule order); then every connection is closed (the results
  flushed first).

Series run one after the other, in schedule order: a player is in one series
at a time, and each player's wire sees its encounters in schedule order
(section 3). Task tree::

    Tournament.run
     └─ Recorder.writing()'s nursery
         ├─ event log writer    record.py: commits the queued events in batches
         └─ (body) series nursery
             └─ series task     one at a time: Series.run, owned here; the
                                tournament waits for its ``done``

The Results are sent once they, and every event of the tournament, are
committed (:meth:`~duorelay.referee.record.Recorder.tournament_over` waits);
a store error ends the writer, cancels the series and fails the tournament
(no Results, every connection closed), as before the writer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from duorelay.protocols import CloseCode
from duorelay.protocols import santorini as wire
from duorelay.protocols.santorini import Result
from duorelay.referee.players import Misbehaved, RemotePlayer, tell
from duorelay.referee.record import Recorder
from duorelay.referee.santorini import Series

log = logging.getLogger("duorelay")


def unique_names(names: Sequence[str]) -> list[str]:
    """The names the players play as (section 2; the reference's rule).

    In order, a name already taken becomes the name plus "a"s, one longer than
    the longest name so far: ``["x", "x", "xa"]`` becomes ``["x", "xa", "xaa"]``.
    """
    taken: set[str] = set()
    longest = 0
    unique = []
    for name in names:
        if name in taken:
            name += "a" * (longest - len(name) + 1)
        taken.add(name)
        longest = max(longest, len(name))
        unique.append(name)
    return unique


def schedule(count: int) -> list[tuple[int, int]]:
    """The round robin of ``count`` players as index pairs, in playing order (section 5)."""
    return [(first, later) for first in range(count) for later in range(first + 1, count)]


@dataclass
class Standings:
    """The results so far, under the misbehaviour policy of section 5.

    ``results`` are in schedule order; ``cheaters`` the names of the players
    that misbehaved, in the order they did.
    """

    results: list[Result] = field(default_factory=list)
    cheaters: list[str] = field(default_factory=list)

    def record(self, result: Result, cheater: str | None = None) -> None:
        """Add a series' result; with ``cheater`` (the loser), apply the policy."""
        self.results.append(result)
        if cheater is not None:
            self.expel(cheater)

    def expel(self, name: str) -> None:
        """``name`` misbehaved: each past win of it goes to its opponent, or is
        dropped if that opponent misbehaved too."""
        self.cheaters.append(name)
        rewritten = []
        for result in self.results:
            if result.winner == name:
                if result.loser in self.cheaters:
                    continue
                result = Result(result.loser, name)
            rewritten.append(result)
        self.results = rewritten

    def plays(self, name: str) -> bool:
        """Whether ``name`` still plays (it has not misbehaved)."""
        return name not in self.cheaters


class Tournament:
    """One round-robin tournament of ``players`` (in registration order).

    ``time_per_call`` bounds every request to a player, in seconds (section 5:
    the reference's 1.2 s). Events go through ``recorder``.
    """

    def __init__(
        self, players: Sequence[RemotePlayer], *, time_per_call: float, recorder: Recorder
    ) -> None:
        self.players = list(players)
        self.time_per_call = time_per_call
        self.recorder = recorder
        self.standings = Standings()
        self.id: int | None = None

    async def run(self) -> list[Result]:
        """Rename, play every series in order, send the results, close every connection.

        Returns the Results. Cancelled (the server stops), it closes every
        player's connection on the way out. A series that fails with a bug
        ends the tournament with that error, after the same closes.
        """
        try:
            players = await self._rename()
            names = [player.name for player in players]
            pairs = schedule(len(players))
            async with self.recorder.writing() as recorder:
                self.id = await recorder.tournament_started(
                    names, [[names[a], names[b]] for a, b in pairs]
                )
                log.info(
                    "santorini: tournament %s starts: %s",
                    self.id if self.id is not None else "-",
                    " ".join(names),
                    extra={"event": "tournament-start", "tournament": self.id},
                )
                await self._play(players, pairs, recorder)
                results = self.standings.results
                message = wire.results_message(results)
                await recorder.tournament_over(self.id, message)  # committed: then told
            for player in players:
                if self.standings.plays(player.name) and player.left is None:
                    try:
                        await tell(player, message, self.time_per_call)
                    except Misbehaved as late:
                        log.info(
                            "santorini: %s not told the results: %s", player.name, late.reason
                        )
            return results
        finally:
            for player in self.players:
                player.connection.close(CloseCode.NORMAL, "tournament over", flush=True)

    async def _play(
        self, players: list[RemotePlayer], pairs: list[tuple[int, int]], recorder: Recorder
    ) -> None:
        """Every series of ``pairs`` in order, one at a time, into :attr:`standings`."""
        async with trio.open_nursery() as nursery:
            for number, (a, b) in enumerate(pairs, start=1):
                one, two = players[a], players[b]
                if not (self.standings.plays(one.name) and self.standings.plays(two.name)):
                    continue
                series = Series(
                    one,
                    two,
                    number=number,
                    time_per_call=self.time_per_call,
                    recorder=recorder,
                    tournament_id=self.id,
                )
                nursery.start_soon(series.run, name=f"santorini series {one.name}-{two.name}")
                await series.done.wait()
                if series.outcome is None:  # it failed: the nursery raises its error
                    return
                cheater = series.outcome.cheater
                self.standings.record(
                    series.outcome.result, None if cheater is None else cheater.name
                )

    async def _rename(self) -> list[RemotePlayer]:
        """Give every player a unique name; those that cannot be told are dropped."""
        playing: list[RemotePlayer] = []
        for player in self.players:
            name = unique_names([*(p.name for p in playing), player.name])[-1]
            if name != player.name:
                try:
                    await tell(player, wire.playing_as(name), self.time_per_call)
                except Misbehaved as failed:
                    player.expel(failed)
                    continue
                player.name = name
            playing.append(player)
        return playing
