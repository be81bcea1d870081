"""The Quart-Trio application: static site, websocket endpoints, settings.

``duorelay.app:app`` is what Hypercorn serves::

    hypercorn duorelay.app:app --worker-class trio

or, with graceful shutdown and keepalive set from the settings,
``python -m duorelay`` (:mod:`duorelay.cli`).

HTTP requests are Quart's: ``GET /`` is ``index.html`` of the static folder,
``/static/<path>`` its files (404 for a missing file or a path escaping the
folder), ``GET /healthz`` a JSON summary and ``GET /metrics`` Prometheus
metrics. Websocket upgrades on a relay endpoint (``/ws``, ``/ws/{namespace}``)
and WMBP paths (``/CREATE``, ``/{CODE}``) are handed, as raw ASGI, to a
:class:`~duorelay.core.session.Session`; any other websocket path goes to Quart,
which has no websocket route and refuses it (HTTP 404). ``GET /{CODE}`` tells
whether a WMBP room exists. The paths above keep priority over 4-letter codes:
``/CREATE`` and every 4-character path are reserved for WMBP.

With ``DUORELAY_SANTORINI_PORT`` the Santorini tournament service
(:mod:`duorelay.services.santorini`, repeat mode) runs in the serving nursery
too, beside the relay, listening on its own TCP port; its observers
(:mod:`duorelay.services.santorini_web`) are the page ``/santorini/``, the
JSON API ``/santorini/api/...`` and the websocket feeds ``/santorini/live``
and ``/santorini/live/{match_id}``, fed by a spectators hub given to the
tournament's recorder.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WebsocketScope
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Response, send_from_directory
from quart_trio import QuartTrio

from duorelay.cluster import wmbp as cluster_wmbp
from duorelay.cluster.redis import RedisBackplane
from duorelay.core.backplane import UNAVAILABLE, Backplane, BackplaneUnavailable
from duorelay.core.session import Handler, Peer, Session
from duorelay.observability import Stats, StatsCollector, configure_logging
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import wmbp as wmbp_protocol
from duorelay.protocols.kamon import namespace_for_path
from duorelay.referee.record import Recorder
from duorelay.referee.spectators import SpectatorHub
from duorelay.relay import kamon, wmbp
from duorelay.relay.rooms import Registry
from duorelay.services.santorini import SantoriniServer, ServerConfig
from duorelay.services.santorini_web import SantoriniWeb
from duorelay.settings import Settings, load_settings
from duorelay.store.gateway import Store
from duorelay.transport import hypercorn_shims
from duorelay.transport.asgi import WebSocket
from duorelay.transport.sockets import set_tcp_user_timeout_on_listeners

TEXT_PLAIN = "text/plain; charset=utf-8"

log = logging.getLogger("duorelay")


class DuoRelay(QuartTrio):
    """The duorelay app: a QuartTrio app that owns the relay's state.

    ``settings`` are frozen; ``rooms`` is the process's room registry, whose
    seats hold the outboxes of live connections; ``backplane`` what connects
    it to the other processes (Redis with ``DUORELAY_REDIS_URL``, else
    nothing); ``sessions`` the live websocket connections; ``stats`` the
    counters behind ``/metrics``. The backplane's task runs in the app's
    serving nursery, from before the first request to the end of shutdown.
    """

    def __init__(self, settings: Settings) -> None:
        static_dir = settings.static_dir.resolve()
        super().__init__(__name__, static_folder=str(static_dir), static_url_path="/static")
        self.settings = settings
        self.rooms: Registry[Peer] = Registry()
        self.sessions: set[Session] = set()
        self.stats = Stats()
        self.backplane = (
            RedisBackplane(
                settings.redis_url, settings.redis_prefix, settings.redis_lease, self.stats
            )
            if settings.redis_url
            else Backplane()
        )
        self.shutting_down = False
        self.started = time.monotonic()
        self.metrics = CollectorRegistry()
        self.metrics.register(
            StatsCollector(
                self.stats,
                lambda: len(self.sessions),
                lambda: len(self.rooms),
                lambda: self.backplane.available,
            )
        )
        self.add_url_rule("/", "index", self._index)
        self.add_url_rule("/healthz", "healthz", self._healthz)
        self.add_url_rule("/metrics", "metrics", self._metrics)
        self.add_url_rule("/<string(length=4):code>", "wmbp_room", self._wmbp_room)
        self.before_serving(self._set_socket_options)
        self.before_serving(self._start_backplane)
        self.santorini: SantoriniServer | None = None
        self.santorini_web = SantoriniWeb(SpectatorHub(settings.outbox_size), static_dir)
        self.santorini_web.install(self)
        if settings.santorini_port is not None:
            self.before_serving(self._start_santorini)

    async def _index(self) -> Response:
        return await send_from_directory(self.settings.static_dir.resolve(), "index.html")

    async def _healthz(self) -> dict[str, Any]:
        """``GET /healthz``: 200 with ``{"status", "rooms", "connections", "uptime",
        "backplane"}`` (uptime in seconds; backplane ``{"kind": "in-process" |
        "redis", "available": bool, "error"?: str, "internal_error"?: str}``).

        ``status`` is ``shutting down`` after a signal, ``degraded`` while a bug
        in the backplane's own tasks keeps dropping its connection
        (``internal_error`` says which; :attr:`Backplane.fault`), else ``ok``.
        Redis out of reach leaves the status ``ok``: rooms held here keep
        working; new joins wait for it, then get 1013. Always 200: a bug found
        on one process is in every process's code, and a load balancer taking
        them all out would end the rooms that still work."""
        status = "ok"
        if self.shutting_down:
            status = "shutting down"
        elif self.backplane.fault:
            status = "degraded"
        return {
            "status": status,
            "backplane": self.backplane.describe(),
            "rooms": len(self.rooms),
            "connections": len(self.sessions),
            "uptime": round(time.monotonic() - self.started, 3),
        }

    async def _metrics(self) -> Response:
        """``GET /metrics``: Prometheus text format (see :mod:`duorelay.observability`)."""
        return Response(generate_latest(self.metrics), content_type=CONTENT_TYPE_LATEST)

    async def _wmbp_room(self, code: str) -> Response:
        """``GET /{CODE}``: 200 with the WMBP room's name, or 404 ``Game not found``
        (docs/protocols.md section 2), readable from any origin. With a shared
        backplane the room may be on any process; Redis out of reach: 503."""
        room = self.rooms.find(code)
        name = room.name if room is not None else None
        if name is None and self.backplane.shared:
            try:
                found = await self.backplane.lookup(cluster_wmbp.room_key(code))
            except BackplaneUnavailable:
                return Response(UNAVAILABLE, status=503, content_type=TEXT_PLAIN)
            name = None if found is None else found.decode()
        if name is None:
            response = Response("Game not found", status=404, content_type=TEXT_PLAIN)
        else:
            response = Response(name, content_type=TEXT_PLAIN)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    async def _set_socket_options(self) -> None:
        count = set_tcp_user_timeout_on_listeners(self.settings.tcp_user_timeout)
        if count:
            log.info(
                "TCP_USER_TIMEOUT %g s set on %d listening sockets",
                self.settings.tcp_user_timeout,
                count,
            )

    async def _start_backplane(self) -> None:
        await self.nursery.start(self.backplane.run)

    async def _start_santorini(self) -> None:
        """Run the Santorini tournament service (repeat mode) in the serving nursery,
        beside the websocket relay; its store is ``DUORELAY_DATABASE_URL``."""
        settings = self.settings
        assert settings.santorini_port is not None
        store = Store(settings.database_url)
        await store.migrate()
        config = ServerConfig(
            settings.santorini_min_players,
            settings.santorini_waiting_for,
            repeat=True,
            port=settings.santorini_port,
            host=settings.santorini_host,
        )
        web = self.santorini_web
        self.santorini = SantoriniServer(config, settings, self.stats, Recorder(store, web.hub))
        web.store = store

        async def serve(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
            assert self.santorini is not None
            try:
                await self.santorini.run(task_status=task_status)
            finally:
                web.store = None
                store.close()

        await self.nursery.start(serve)

    async def asgi_app(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Route a relay websocket to its session; everything else to Quart."""
        if scope["type"] == "websocket":
            handler = self._websocket_handler(scope["path"])
            if handler is not None:
                handler = self._refusal(scope) or handler
                await self._run_session(WebSocket(scope, receive, send), handler)
                return
        await super().asgi_app(scope, receive, send)

    def _websocket_handler(self, path: str) -> Handler | None:
        """The handler of a websocket path, or None (Quart refuses it: 404).

        ``/ws`` and ``/ws/{namespace}``: Kamon relay. ``/CREATE``: a WMBP host.
        ``/{CODE}``, any 4 characters: a WMBP client. ``/santorini/live`` and
        ``/santorini/live/...``: Santorini spectators.
        """
        santorini = self.santorini_web.websocket_handler(path)
        if santorini is not None:
            return santorini
        namespace = namespace_for_path(path)
        if namespace is not None:
            return partial(
                kamon.relay, namespace=namespace, rooms=self.rooms, backplane=self.backplane
            )
        shared = self.backplane.shared
        if path == wmbp_protocol.CREATE_PATH:
            if shared:
                return partial(cluster_wmbp.host, rooms=self.rooms, backplane=self.backplane)
            return partial(wmbp.host, rooms=self.rooms)
        code = wmbp_protocol.code_for_path(path)
        if code is not None:
            if shared:
                return partial(
                    cluster_wmbp.client, rooms=self.rooms, code=code, backplane=self.backplane
                )
            return partial(wmbp.client, rooms=self.rooms, code=code)
        return None

    async def _run_session(self, websocket: WebSocket, handler: Handler) -> None:
        session = Session(websocket, self.settings, self.stats)
        self.sessions.add(session)
        try:
            await session.run(handler)
        finally:
            self.sessions.discard(session)

    def _refusal(self, scope: WebsocketScope) -> Handler | None:
        """A handler that closes a connection the server will not serve, or None.

        Refusals are close codes, sent after the upgrade: 1001 while shutting
        down, 4429 over ``max_connections``, 4403 for an Origin not in
        ``allowed_origins`` (a request without Origin, a bot, is allowed).
        """
        if self.shutting_down:
            return _refuse(CloseCode.GOING_AWAY, "server shutting down")
        if len(self.sessions) >= self.settings.max_connections:
            return _refuse(CloseCode.TOO_MANY, "too many connections: try again later")
        allowed = self.settings.allowed_origins
        if allowed:
            origin = next((v for k, v in scope["headers"] if k.lower() == b"origin"), None)
            if origin is not None and origin.decode("latin-1") not in allowed:
                return _refuse(CloseCode.FORBIDDEN, "origin not allowed")
        return None

    def shut_down(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every websocket with ``code`` and refuse new ones the same way.

        Synchronous: each session is told to close (its handler is cancelled and
        its seat released at once); the close frames go out as the sessions end.
        """
        self.shutting_down = True
        for session in list(self.sessions):
            session.close(code, reason)


def _refuse(code: CloseCode, reason: str) -> Handler:
    async def refuse(session: Session) -> None:
        raise ProtocolError(code, reason)

    return refuse


def create_app(settings: Settings | None = None) -> DuoRelay:
    """Create the app; ``settings`` default to the ``DUORELAY_*`` environment.

    Raises :class:`~duorelay.settings.SettingsError`, naming the variable, when
    a setting is bad, and :class:`~duorelay.transport.hypercorn_shims.ShimError`
    when the installed Hypercorn is not the one its patches were written for
    (they are installed here, once per process).
    """
    hypercorn_shims.install()
    settings = settings if settings is not None else load_settings()
    configure_logging(settings.log_format)
    return DuoRelay(settings)


app = create_app()
