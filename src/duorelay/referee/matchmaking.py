"""UTTT matchmaking (docs/uttt.md, match_request): the random queue of one
process and named requests.

- Random: first come, first served. A request pairs the requester with the
  longest-waiting queued player it does not already play a match with; that
  player, who waited, is player_a and moves first. With nobody to pair, the
  requester waits in the queue (once; a second request while queued is
  refused). A player whose connections all closed leaves it (:meth:`leave`).
- Named: the requester is player_a; the match starts at once, the opponent
  online or not.

Either way a match starts only if neither player is at
:data:`~duorelay.store.matches.MAX_OPEN` live matches and the two do not
already play one (checked in the transaction that creates it). Requests are
served one at a time (a ``trio.Lock``); each is a bounded amount of work: at
most :data:`CANDIDATES` queued players are tried.
"""

from __future__ import annotations

import trio
from sqlalchemy import Connection

from duorelay.referee.accounts import valid_name
from duorelay.referee.uttt import GAME
from duorelay.store.accounts import Account, account_by_name
from duorelay.store.gateway import Store
from duorelay.store.matches import MAX_OPEN, create_match, open_count, opponents

CANDIDATES = 8
"""Queued players one random request tries at most (each costs a few queries)."""


class MatchRefused(Exception):
    """A match request refused; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Matchmaking:
    """Random queue and named requests over ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: dict[int, Account] = {}
        """Waiting players by account id, in the order they came (FCFS)."""
        self._lock = trio.Lock()

    def __len__(self) -> int:
        return len(self._queue)

    def waiting(self, account_id: int) -> bool:
        """Whether the account waits in the random queue."""
        return account_id in self._queue

    def leave(self, account_id: int) -> None:
        """Remove the account from the queue (if there). Synchronous."""
        self._queue.pop(account_id, None)

    async def random(self, account: Account) -> str | None:
        """Pair ``account`` with a queued player: the new match's id, or ``None``
        when it now waits. :class:`MatchRefused` if it already waits or is at
        its limit."""
        async with self._lock:
            if account.id in self._queue:
                raise MatchRefused("you are already waiting for an opponent")
            candidates = [other for other in self._queue.values() if other.id != account.id]

            def pair(connection: Connection) -> tuple[str | None, int | None, list[int]]:
                if open_count(connection, account.id, GAME) >= MAX_OPEN:
                    raise MatchRefused(f"you have {MAX_OPEN} open matches already")
                busy = opponents(connection, account.id, GAME)
                full = []
                for other in [c for c in candidates if c.id not in busy][:CANDIDATES]:
                    if open_count(connection, other.id, GAME) >= MAX_OPEN:
                        full.append(other.id)
                        continue
                    return create_match(connection, GAME, other, account), other.id, full
                return None, None, full

            match_id, opponent_id, full = await self.store.run(pair)
            for account_id in full:
                self._queue.pop(account_id, None)
            if opponent_id is None:
                self._queue[account.id] = account
            else:
                self._queue.pop(opponent_id, None)
            return match_id

    async def named(self, account: Account, name: str) -> str:
        """Start a match of ``account`` (player_a) against the player called
        ``name``; its id. :class:`MatchRefused` for an unknown name, oneself,
        a player at the limit, or a pair already playing."""
        opponent_name = valid_name(name)
        if opponent_name is None:
            raise MatchRefused("no such player")

        def start(connection: Connection) -> str:
            opponent = account_by_name(connection, opponent_name)
            if opponent is None:
                raise MatchRefused(f"no player called {opponent_name}")
            try:
                return create_match(connection, GAME, account, opponent)
            except ValueError as refused:
                raise MatchRefused(str(refused)) from None

        async with self._lock:
            return await self.store.run(start)
