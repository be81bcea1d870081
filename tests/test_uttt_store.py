"""UTTT's store queries (store/matches.py) and its match game (referee/uttt.py)
on a real SQLite store: limits, session expiry, overdue matches, replay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import trio

from duorelay.referee.matches import Decision, Matches, Refused
from duorelay.referee.uttt import GAME, Finished, PlayMove, Revoke, UtttGame
from duorelay.store import accounts as queries
from duorelay.store import matches as q
from duorelay.store.accounts import Account, now
from duorelay.store.gateway import Store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on SQLite and on PostgreSQL."""
    store = Store(database_url)
    await store.migrate()
    yield store
    store.close()


async def account(store: Store, name: str, temporary: bool = False) -> Account:
    made = await store.run(lambda c: queries.create_account(c, name, None if temporary else "h"))
    assert made is not None
    return made


async def test_create_match_limits(store: Store) -> None:
    ann = await account(store, "ann")
    foes = [await account(store, f"foe{n}") for n in range(6)]
    for foe in foes[:5]:
        await store.run(lambda c, foe=foe: q.create_match(c, GAME, ann, foe))
    with pytest.raises(ValueError, match="you have 5 open matches"):
        await store.run(lambda c: q.create_match(c, GAME, ann, foes[5]))
    await store.run(lambda c: q.create_match(c, GAME, foes[0], foes[1]))
    with pytest.raises(ValueError, match="already play"):
        await store.run(lambda c: q.create_match(c, GAME, foes[1], foes[0]))
    with pytest.raises(ValueError, match="yourself"):
        await store.run(lambda c: q.create_match(c, GAME, ann, ann))
    assert await store.run(lambda c: q.open_count(c, ann.id, GAME)) == 5
    assert await store.run(lambda c: q.opponents(c, ann.id, GAME)) == {f.id for f in foes[:5]}


async def test_session_expiry_regular_and_temporary(store: Store) -> None:
    reg = await account(store, "reg")
    tmp = await account(store, "tmp", temporary=True)
    reg_session = await store.run(lambda c: queries.create_session(c, reg.id))
    tmp_session = await store.run(lambda c: queries.create_session(c, tmp.id))
    at = now()
    hour_ago, days_ago = at - timedelta(hours=1), at - timedelta(days=20)
    later = at + timedelta(seconds=1)  # as if an hour (or 20 days) had gone by
    assert await store.run(lambda c: q.resume_session(c, reg_session, days_ago, later)) == reg
    assert await store.run(lambda c: q.resume_session(c, tmp_session, days_ago, later)) is None
    assert await store.run(lambda c: q.resume_session(c, tmp_session, days_ago, hour_ago)) == tmp
    assert await store.run(lambda c: q.resume_session(c, reg_session, later, later)) is None
    assert await store.run(lambda c: q.resume_session(c, "0" * 32, days_ago, hour_ago)) is None


async def test_game_moves_revoke_and_replay(store: Store) -> None:
    ann, bob = await account(store, "ann"), await account(store, "bob")
    match_id = await store.run(lambda c: q.create_match(c, GAME, ann, bob))
    game = UtttGame()
    matches: Matches = Matches(store, game, GAME)  # type: ignore[type-arg]
    async with trio.open_nursery() as nursery:
        await nursery.start(matches.run)
        got: list[Decision | Refused] = []  # type: ignore[type-arg]
        done = trio.Event()

        def reply(outcome: Decision | Refused) -> None:  # type: ignore[type-arg]
            got.append(outcome)
            done.set()

        await matches.submit(match_id, PlayMove(bob.id, 0, 0, 0, 0, now()), reply)
        await done.wait()
        assert isinstance(got[-1], Refused) and got[-1].reason == "it is not your turn"
        done = trio.Event()
        await matches.submit(match_id, PlayMove(ann.id, 1, 1, 1, 1, now()), reply)
        await done.wait()
        assert isinstance(got[-1], Decision)
        assert await store.run(lambda c: q.overdue(c, GAME, now() - timedelta(hours=1), 10)) == []
        done = trio.Event()
        await matches.submit(match_id, Revoke(now(), now()), reply)
        await done.wait()
        decision = got[-1]
        assert isinstance(decision, Decision) and isinstance(decision.extra, Finished)
        assert decision.extra.winner == "ann" and decision.extra.rated
        assert decision.extra.standings[ann.id].rating == 1010
        nursery.cancel_scope.cancel()
    loaded = await store.run(lambda c: game.load(c, match_id))
    assert loaded is not None and loaded[1] == 2
    assert loaded[0].state.result is not None and loaded[0].moves == 1
    assert await store.run(lambda c: q.matches_to_show(c, bob.id, GAME)) == [match_id]
    await store.run(lambda c: q.mark_seen(c, [match_id], bob.id))
    assert await store.run(lambda c: q.matches_to_show(c, bob.id, GAME)) == []
    assert await store.run(lambda c: q.matches_to_show(c, ann.id, GAME)) == [match_id]
