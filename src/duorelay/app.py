"""The Quart-Trio application: static site, websocket endpoints, settings.

``duorelay.app:app`` is what Hypercorn serves::

    hypercorn duorelay.app:app --worker-class trio

HTTP requests are Quart's: ``GET /`` is ``index.html`` of the static folder,
``/static/<path>`` its files (404 for a missing file or a path escaping the
folder). Websocket upgrades on a relay endpoint (``/ws``, ``/ws/{namespace}``)
are handed, as raw ASGI, to a :class:`~duorelay.session.Session`; any other
websocket path goes to Quart, which has no websocket route and refuses it
(HTTP 404).
"""

from __future__ import annotations

import logging
import sys
from functools import partial

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Response, send_from_directory
from quart_trio import QuartTrio

from duorelay import kamon
from duorelay.protocols.kamon import namespace_for_path
from duorelay.rooms import Registry
from duorelay.session import Outbox, Session, WebSocket
from duorelay.settings import Settings, load_settings

LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"


class DuoRelay(QuartTrio):
    """The duorelay app: a QuartTrio app that owns the room registry.

    ``settings`` are frozen; ``rooms`` is the process's room registry, whose
    seats hold the outboxes of live connections.
    """

    def __init__(self, settings: Settings) -> None:
        static_dir = settings.static_dir.resolve()
        super().__init__(__name__, static_folder=str(static_dir), static_url_path="/static")
        self.settings = settings
        self.rooms: Registry[Outbox] = Registry()
        self.add_url_rule("/", "index", self._index)

    async def _index(self) -> Response:
        return await send_from_directory(self.settings.static_dir.resolve(), "index.html")

    async def asgi_app(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Route a relay websocket to its session; everything else to Quart."""
        if scope["type"] == "websocket":
            namespace = namespace_for_path(scope["path"])
            if namespace is not None:
                session = Session(WebSocket(scope, receive, send), self.settings)
                await session.run(partial(kamon.relay, namespace=namespace, rooms=self.rooms))
                return
        await super().asgi_app(scope, receive, send)


def configure_logging() -> None:
    """Give the ``duorelay`` logger a stderr handler in Hypercorn's format.

    Does nothing if the logger already has a handler (an operator's logging
    configuration wins).
    """
    logger = logging.getLogger("duorelay")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def create_app(settings: Settings | None = None) -> DuoRelay:
    """Create the app; ``settings`` default to the ``DUORELAY_*`` environment.

    Raises :class:`~duorelay.settings.SettingsError`, naming the variable, when
    a setting is bad.
    """
    configure_logging()
    return DuoRelay(settings if settings is not None else load_settings())


app = create_app()
