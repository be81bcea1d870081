"""The UTTT server's sweeper: revoke time and session expiry (docs/uttt.md).

:func:`sweep` is a task of :meth:`UtttService.run
<duorelay.services.uttt.UtttService.run>`'s nursery, cancelled with it when the
app stops. Every ``revoke_time / 10`` seconds (0.05 to 60 s) it submits a
:class:`~duorelay.referee.uttt.Revoke` for each match without a move for
``revoke_time`` seconds (at most :data:`SWEEP_BATCH` a round) through the
match's inbox, so a revoke and a move arriving together are decided one after
the other, and it deletes login sessions unused for :data:`SESSION_LIFETIME`.
A store error is logged and the next round tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import trio
from sqlalchemy.exc import SQLAlchemyError

from duorelay.referee import uttt as referee_uttt
from duorelay.referee.matches import Decision, Matches, Refused
from duorelay.referee.uttt import GAME
from duorelay.store import accounts as queries
from duorelay.store import matches as match_queries
from duorelay.store.accounts import now
from duorelay.store.gateway import Store, StoreClosed

log = logging.getLogger("duorelay")

SESSION_LIFETIME = timedelta(days=20)
"""A login session unused this long expires."""
SWEEP_BATCH = 100
"""Overdue matches revoked per sweep at most."""


async def sweep(
    revoke_time: float,
    store: Store,
    matches: Matches[Any, Any],
    revoked: Callable[[str, Decision[Any] | Refused], None],
) -> None:
    """Revoke overdue matches (``revoked(match_id, outcome)`` is each one's
    reply) and expire sessions, until cancelled."""
    interval = min(60.0, max(0.05, revoke_time / 10))
    while True:
        at = now()
        before = at - timedelta(seconds=revoke_time)
        try:
            find = partial(
                match_queries.overdue, game=GAME, moved_before=before, limit=SWEEP_BATCH
            )
            for match_id in await store.run(find):
                command = referee_uttt.Revoke(before, at)
                await matches.submit(match_id, command, partial(revoked, match_id))
            await store.run(
                partial(queries.delete_sessions_before, used_before=at - SESSION_LIFETIME)
            )
        except (StoreClosed, SQLAlchemyError) as error:
            log.warning("uttt: sweep failed: %s", error)
        await trio.sleep(interval)
