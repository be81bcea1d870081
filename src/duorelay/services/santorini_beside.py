"""The Santorini service inside the web server (``python -m duorelay``).

:func:`serve_tournaments` (``DUORELAY_SANTORINI_PORT`` set) runs the
tournament server (:class:`~duorelay.services.santorini.SantoriniServer`,
repeat mode) as a task of the app's serving nursery, cancelled at shutdown, on
the store of the app's turn-based services
(:class:`~duorelay.services.referee_store.RefereeStore`: one store, migrated
once, closed by its own task), the spectators hub of ``web`` as the
recorder's observer. Without a port the observers' page still lists and
replays what the store holds (what ``python -m duorelay santorini`` stored).
"""

from __future__ import annotations

import trio

from duorelay.observability import Stats
from duorelay.referee.record import Recorder
from duorelay.services.referee_store import RefereeStore
from duorelay.services.santorini import SantoriniServer, ServerConfig
from duorelay.services.santorini_web import SantoriniWeb
from duorelay.settings import Settings


async def serve_tournaments(
    settings: Settings,
    stats: Stats,
    web: SantoriniWeb,
    referee: RefereeStore,
    *,
    task_status: trio.TaskStatus[SantoriniServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the tournament service on ``settings.santorini_port`` until cancelled;
    reports the running server once it listens. :class:`StoreUnavailable` if
    the database could not be opened."""
    assert settings.santorini_port is not None
    store = (await referee.get()).store
    config = ServerConfig(
        settings.santorini_min_players,
        settings.santorini_waiting_for,
        repeat=True,
        port=settings.santorini_port,
        host=settings.santorini_host,
    )
    server = SantoriniServer(config, settings, stats, Recorder(store, web.hub))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        task_status.started(server)
