"""The store and accounts of the turn-based services (UTTT, XO) inside the web server.

:meth:`RefereeStore.hold` is a task of the app's serving nursery, started
without holding up the start of serving: it opens ``DUORELAY_DATABASE_URL``
(creating a SQLite file if there is none), applies the migrations, makes the
:class:`Referee` (the store, the accounts) available to :meth:`RefereeStore.get`,
and closes the store when it is cancelled (at shutdown), however the services
that borrowed it end. A database that cannot be opened is logged in one line;
from then on :meth:`RefereeStore.get` raises :class:`StoreUnavailable` (the
services answer that they are unavailable; the relay is not affected).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy.exc
import trio

from duorelay.referee.accounts import Accounts, LoginLimit
from duorelay.settings import Settings
from duorelay.store.gateway import Store

log = logging.getLogger("duorelay")


class StoreUnavailable(RuntimeError):
    """The database could not be opened (or the server is shutting down)."""


@dataclass(frozen=True, slots=True)
class Referee:
    """What the turn-based services share in one process."""

    store: Store
    accounts: Accounts


class RefereeStore:
    """The :class:`Referee` of one app, once :meth:`hold` has opened it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._referee: Referee | None = None
        self._done = trio.Event()

    async def get(self) -> Referee:
        """The referee, waiting while the store opens; :class:`StoreUnavailable`
        if it could not be opened or is closed."""
        await self._done.wait()
        if self._referee is None:
            raise StoreUnavailable("the database is unavailable")
        return self._referee

    async def hold(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open and migrate the store, hold it until cancelled, then close it."""
        task_status.started()
        store = Store(self.settings.database_url, self.settings.sqlite_synchronous)
        try:
            try:
                await store.migrate()
            except sqlalchemy.exc.SQLAlchemyError as error:
                log.error("database unavailable: %s", str(error).splitlines()[0])
                return
            self._referee = Referee(
                store,
                Accounts(
                    store,
                    LoginLimit(self.settings.login_rate, self.settings.login_burst),
                    self.settings.password_profile,
                ),
            )
            self._done.set()
            await trio.sleep_forever()
        finally:
            self._referee = None
            self._done.set()
            store.close()
