"""The Santorini service inside the web server (``python -m duorelay``).

Two ways, both tasks of the app's serving nursery, cancelled at shutdown:

- :func:`serve_tournaments` (``DUORELAY_SANTORINI_PORT`` set): the tournament
  server (:class:`~duorelay.services.santorini.SantoriniServer`, repeat mode)
  with its store, the spectators hub of ``web`` as the recorder's observer;
- :func:`hold_archive` (no port, but a database that exists: see
  :func:`database_exists`): only the store, so the observers' page lists and
  replays what ``python -m duorelay santorini`` stored; nothing is live.

Either way the store is ``web.store`` while the task runs, and closed when it
ends, however it ends.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy.exc
import trio
from sqlalchemy.engine import make_url

from duorelay.observability import Stats
from duorelay.referee.record import Recorder
from duorelay.services.santorini import SantoriniServer, ServerConfig
from duorelay.services.santorini_web import SantoriniWeb
from duorelay.settings import Settings
from duorelay.store.gateway import Store

log = logging.getLogger("duorelay")


def database_exists(url: str) -> bool:
    """Whether the database at ``url`` may hold stored games: a SQLite file that
    exists, or any other database (a server's). Synchronous (a ``stat``): decided
    when the app is created, so a SQLite file that does not exist is never made."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    return bool(parsed.database) and Path(parsed.database or "").is_file()


async def _open(url: str) -> Store:
    """A store at ``url``, migrated; closed again if the migration fails or is
    cancelled (the error is raised)."""
    store = Store(url)
    try:
        await store.migrate()
    except BaseException:  # closed, then re-raised (trio.Cancelled included)
        store.close()
        raise
    return store


async def serve_tournaments(
    settings: Settings,
    stats: Stats,
    web: SantoriniWeb,
    *,
    task_status: trio.TaskStatus[SantoriniServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the tournament service on ``settings.santorini_port`` until cancelled;
    reports the running server once it listens."""
    assert settings.santorini_port is not None
    store = await _open(settings.database_url)
    config = ServerConfig(
        settings.santorini_min_players,
        settings.santorini_waiting_for,
        repeat=True,
        port=settings.santorini_port,
        host=settings.santorini_host,
    )
    server = SantoriniServer(config, settings, stats, Recorder(store, web.hub))
    web.store = store
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            task_status.started(server)
    finally:
        web.store = None
        store.close()


async def hold_archive(
    url: str, web: SantoriniWeb, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Hold the store at ``url`` for the observers until cancelled. A database
    that cannot be opened is logged in one line and not served (not fatal)."""
    try:
        store = await _open(url)
    except sqlalchemy.exc.SQLAlchemyError as error:
        log.warning("santorini archive not served: %s", str(error).splitlines()[0])
        task_status.started()
        return
    web.store = store
    try:
        task_status.started()
        await trio.sleep_forever()
    finally:
        web.store = None
        store.close()
