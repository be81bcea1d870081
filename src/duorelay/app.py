"""The Quart-Trio application: static site, websocket endpoints, settings.

``duorelay.app:app`` is what Hypercorn serves::

    hypercorn duorelay.app:app --worker-class trio

or, with graceful shutdown and keepalive set from the settings,
``python -m duorelay`` (:mod:`duorelay.cli`).

HTTP requests are Quart's: ``GET /`` is ``index.html`` of the static folder,
``/static/<path>`` its files (404 for anything but a regular file inside the
folder, symlinks resolved: see :meth:`DuoRelay.static_file`), ``GET /healthz``
a JSON summary and ``GET /metrics`` Prometheus metrics. Every HTTP response
carries the hardening headers of :meth:`DuoRelay.harden`; a request body is
read within ``body_timeout`` seconds (else 408) and may hold at most
:data:`MAX_BODY_SIZE` bytes (else 413).

Websocket upgrades on a relay endpoint (``/ws``, ``/ws/{namespace}``) and
WMBP paths (``/CREATE``, ``/{CODE}``) are handed, as raw ASGI, to a
:class:`~duorelay.core.session.Session`; any other websocket path goes to
Quart, which has no websocket route and refuses it (HTTP 404). ``GET /{CODE}`` tells
whether a WMBP room exists. The paths above keep priority over 4-letter codes:
``/CREATE`` and every path of 4 letters ``A``-``Z`` are reserved for WMBP.

With ``DUORELAY_SANTORINI_PORT`` the Santorini tournament service
(:mod:`duorelay.services.santorini`, repeat mode) runs in the serving nursery
too, beside the relay, listening on its own TCP port; its observers
(:mod:`duorelay.services.santorini_web`) are the page ``/santorini/``, the
JSON API ``/santorini/api/...`` and the websocket feeds ``/santorini/live``
and ``/santorini/live/{match_id}``, fed by a spectators hub given to the
tournament's recorder.

The ultimate tic-tac-toe server (:mod:`duorelay.services.uttt`) serves
websockets at ``/uttt`` and ``/`` (``GET /`` stays the index) and its page at
``GET /uttt/``; its tasks run in the serving nursery once the store is open.

Abuse limits by client address (the ASGI scope's ``client``: behind a proxy,
every client has the proxy's address; ``X-Forwarded-For`` is not read): at most
``max_connections_per_address`` websockets open in this process, and failed
room-code lookups (``GET /{CODE}`` 404, WMBP client 4404) limited by a token
bucket of ``lookup_rate``/``lookup_burst``, cluster-wide with Redis
(:meth:`~duorelay.core.backplane.Backplane.charge`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from functools import partial
from typing import Any

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
    WebsocketScope,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Response, request, send_file
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import BaseConverter

from duorelay.cluster import wmbp as cluster_wmbp
from duorelay.cluster.redis import RedisBackplane
from duorelay.core.backplane import UNAVAILABLE, Backplane, BackplaneUnavailable
from duorelay.core.session import Handler, Peer, Session
from duorelay.observability import Stats, StatsCollector, configure_logging
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import wmbp as wmbp_protocol
from duorelay.protocols.kamon import namespace_for_path
from duorelay.referee.spectators import SpectatorHub
from duorelay.relay import kamon, wmbp
from duorelay.relay.rooms import Registry
from duorelay.services.referee_store import RefereeStore
from duorelay.services.santorini import SantoriniServer
from duorelay.services.santorini_beside import serve_tournaments
from duorelay.services.santorini_web import SantoriniWeb
from duorelay.services.uttt import UtttService
from duorelay.services.xo import XoService
from duorelay.services.xo_ws import XoSockets
from duorelay.settings import Settings, load_settings
from duorelay.transport import hypercorn_shims
from duorelay.transport.asgi import WebSocket
from duorelay.transport.sockets import set_tcp_user_timeout_on_listeners
from duorelay.web import (
    MAX_BODY_SIZE,
    TEXT_PLAIN,
    add_hardening_headers,
    body_cut_after,
    send_shielding_the_end,
    static_file,
)

LOOKUP_LIMITED = "too many failed lookups: try again later"
"""The body of HTTP 429 and the reason of close 4429 past the failed-lookup limit."""

log = logging.getLogger("duorelay")


class RoomCodeConverter(BaseConverter):
    """A URL part that is a WMBP room code: 4 letters ``A``-``Z`` (docs/protocols.md
    section 2); other 4-character paths (``/uttt``) match no route here: 404."""

    regex = "[A-Z]{4}"


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
        # No static_folder: Quart's static route follows symlinks out of the
        # folder and answers 500 to an over-long name; static_file() replaces it.
        super().__init__(__name__, static_folder=None)
        self.static_root = settings.static_dir.resolve()
        self.config["BODY_TIMEOUT"] = settings.body_timeout
        self.config["MAX_CONTENT_LENGTH"] = MAX_BODY_SIZE
        self.settings = settings
        self.rooms: Registry[Peer] = Registry()
        self.sessions: set[Session] = set()
        """The live websocket sessions (refused ones are not counted)."""
        self.connections_per_address: Counter[str] = Counter()
        """Live sessions by client address (addresses with none are removed)."""
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
        self.add_url_rule("/static/<path:name>", "static", self._static)
        self.add_url_rule("/healthz", "healthz", self._healthz)
        self.add_url_rule("/metrics", "metrics", self._metrics)
        self.url_map.converters["room_code"] = RoomCodeConverter
        self.add_url_rule("/<room_code:code>", "wmbp_room", self._wmbp_room)
        self.before_serving(self._set_socket_options)
        self.before_serving(self._start_backplane)
        self.referee = RefereeStore(settings)
        """The store and accounts of the turn-based services, opened by a task of
        the serving nursery (:class:`~duorelay.services.referee_store.RefereeStore`)."""
        self.before_serving(self._open_referee_store)
        self.santorini: SantoriniServer | None = None
        self.santorini_web = SantoriniWeb(
            SpectatorHub(settings.outbox_size), self.static_root, self.referee
        )
        self.santorini_web.install(self)
        self.uttt = UtttService(settings, self.referee, self.static_root)
        """The ultimate tic-tac-toe server: websockets ``/uttt`` and ``/``, page ``/uttt/``."""
        self.uttt.install(self)
        self.before_serving(self._start_uttt)
        if settings.santorini_port is not None:
            self.before_serving(self._start_santorini)
        self.xo = XoService(settings, self.referee, self.backplane)
        """The XO game API (:mod:`duorelay.services.xo`); its websocket shares ``/ws``."""
        self.xo.install(self)
        self.xo_sockets = XoSockets(self.xo, self.backplane)
        self.before_serving(self._start_xo)
        self.before_request(self._read_body)
        self.after_request(self.harden)

    async def _index(self) -> Response:
        return await self._send_static("index.html")

    async def _static(self, name: str) -> Response:
        return await self._send_static(name)

    async def _send_static(self, name: str) -> Response:
        path = static_file(self.static_root, name)
        if path is None:
            raise NotFound()
        return await send_file(path, conditional=True)

    async def _read_body(self) -> Response | None:
        """Read the request body before any route: within ``body_timeout`` seconds,
        else 408; over :data:`MAX_BODY_SIZE` bytes (announced or sent), 413.
        Either answers ``Connection: close``, so the connection is closed after
        the answer (the rest of the body is never read)."""
        try:
            await request.get_data()
        except HTTPException as error:
            return Response(
                f"{error.code} {error.name}",
                status=error.code,
                content_type=TEXT_PLAIN,
                headers={"Connection": "close"},
            )
        return None

    async def harden(self, response: Response) -> Response:
        """Add the hardening headers to an HTTP response (every one; not to
        websocket upgrades): ``X-Content-Type-Options: nosniff``,
        ``Referrer-Policy: no-referrer`` (the demo pages' URLs hold room names
        and codes: no other site learns them), and ``Content-Security-Policy``
        (``content_security_policy``, default :data:`CONTENT_SECURITY_POLICY`)."""
        add_hardening_headers(
            response.headers, self.settings.content_security_policy, request.host
        )
        return response

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
        backplane the room may be on any process; Redis out of reach: 503.

        A 404 is a failed lookup: past the client address's limit
        (:meth:`lookup_allowed`) every lookup gets 429 :data:`LOOKUP_LIMITED`
        with ``Retry-After`` (seconds until the bucket holds a token again).
        """
        address = request.remote_addr or "?"
        if not await self.lookup_allowed(address):
            response = Response(LOOKUP_LIMITED, status=429, content_type=TEXT_PLAIN)
            response.headers["Retry-After"] = str(math.ceil(1 / self.settings.lookup_rate))
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response
        room = self.rooms.find(code)
        name = room.name if room is not None else None
        if name is None and self.backplane.shared:
            try:
                found = await self.backplane.lookup(cluster_wmbp.room_key(code))
            except BackplaneUnavailable:
                return Response(UNAVAILABLE, status=503, content_type=TEXT_PLAIN)
            name = None if found is None else found.decode()
        if name is None:
            await self.lookup_failed(address)
            response = Response("Game not found", status=404, content_type=TEXT_PLAIN)
        else:
            response = Response(name, content_type=TEXT_PLAIN)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    async def lookup_allowed(self, address: str) -> bool:
        """Whether client ``address`` may look a room code up now: its bucket of
        failed lookups (``lookup_rate`` per second, ``lookup_burst`` at once,
        shared by the cluster) is not empty. While it is, every lookup is
        refused, found or not: else a found code would still tell a guesser
        apart from a failure."""
        rate, burst = self.settings.lookup_rate, self.settings.lookup_burst
        return await self.backplane.charge(f"lookups:{address}", rate, burst, cost=0)

    async def lookup_failed(self, address: str) -> None:
        """Count one failed lookup of client ``address`` (a successful one is free)."""
        rate, burst = self.settings.lookup_rate, self.settings.lookup_burst
        await self.backplane.charge(f"lookups:{address}", rate, burst)

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

    async def _open_referee_store(self) -> None:
        """The store of the turn-based services, held by a task of the serving
        nursery until shutdown (serving starts while it opens)."""
        await self.nursery.start(self.referee.hold)

    async def _start_uttt(self) -> None:
        """The UTTT server's tasks (match tasks, revoke sweeper) in the serving nursery."""
        await self.nursery.start(self.uttt.run)

    async def _start_xo(self) -> None:
        await self.nursery.start(self.xo.run)

    async def _start_santorini(self) -> None:
        """The Santorini tournament service (repeat mode) beside the relay, in the
        serving nursery (:func:`~duorelay.services.santorini_beside.serve_tournaments`)."""
        self.santorini = await self.nursery.start(
            serve_tournaments, self.settings, self.stats, self.santorini_web, self.referee
        )

    async def asgi_app(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Route a relay websocket to its session (or its refusal, which counts
        against no cap); everything else to Quart, HTTP with the request body cut
        after :data:`MAX_BODY_SIZE` and the last send of a response shielded
        (:mod:`duorelay.web`)."""
        if scope["type"] == "websocket":
            address = _address(scope)
            handler = self._websocket_handler(scope["path"], address)
            if handler is not None:
                websocket = WebSocket(scope, receive, send)
                refusal = self._refusal(scope, address)
                if refusal is None:
                    await self._run_session(websocket, handler, address)
                else:  # not counted as a connection: it only closes
                    await Session(websocket, self.settings, self.stats).run(refusal)
                return
        if scope["type"] == "http":
            receive = body_cut_after(receive, MAX_BODY_SIZE)
            send = partial(send_shielding_the_end, send)
        await super().asgi_app(scope, receive, send)

    def _websocket_handler(self, path: str, address: str) -> Handler | None:
        """The handler of a websocket path, or None (Quart refuses it: 404).

        ``/ws`` and ``/ws/{namespace}``: Kamon relay; on ``/ws`` a first frame
        that is a JSON object is the XO game's (:mod:`duorelay.services.xo_ws`).
        ``/CREATE``: a WMBP host.
        ``/{CODE}``, 4 letters ``A``-``Z``: a WMBP client, under the failed-lookup
        limit of client ``address`` (:meth:`_limit_lookups`). ``/santorini/live``
        and ``/santorini/live/...``: Santorini spectators. ``/uttt`` and ``/``:
        the UTTT server (:mod:`duorelay.services.uttt`).
        """
        uttt = self.uttt.websocket_handler(path, address)
        if uttt is not None:
            return uttt
        santorini = self.santorini_web.websocket_handler(path)
        if santorini is not None:
            return santorini
        namespace = namespace_for_path(path)
        if namespace is not None:
            relay = partial(
                kamon.relay, namespace=namespace, rooms=self.rooms, backplane=self.backplane
            )
            if path == "/ws":  # shared with the XO game: told apart by the first frame
                return partial(self.xo_sockets.sniff, kamon=relay)
            return relay
        shared = self.backplane.shared
        if path == wmbp_protocol.CREATE_PATH:
            if shared:
                return partial(cluster_wmbp.host, rooms=self.rooms, backplane=self.backplane)
            return partial(wmbp.host, rooms=self.rooms)
        code = wmbp_protocol.code_for_path(path)
        if code is not None:
            client: Handler
            if shared:
                client = partial(
                    cluster_wmbp.client, rooms=self.rooms, code=code, backplane=self.backplane
                )
            else:
                client = partial(wmbp.client, rooms=self.rooms, code=code)
            return partial(self._limit_lookups, client=client, address=address)
        return None

    async def _limit_lookups(self, session: Session, client: Handler, address: str) -> None:
        """Run WMBP ``client`` for ``session`` under the failed-lookup limit: past
        it, close 4429 :data:`LOOKUP_LIMITED` before looking the code up; a
        4404 (no room with that code) counts as a failed lookup."""
        if not await self.lookup_allowed(address):
            raise ProtocolError(CloseCode.TOO_MANY, LOOKUP_LIMITED)
        try:
            await client(session)
        except ProtocolError as error:
            if error.code == CloseCode.NOT_FOUND:
                await self.lookup_failed(address)
            raise

    async def _run_session(self, websocket: WebSocket, handler: Handler, address: str) -> None:
        """Serve one admitted websocket, counted in :attr:`sessions` and
        :attr:`connections_per_address` while it lives."""
        session = Session(websocket, self.settings, self.stats)
        self.sessions.add(session)
        self.connections_per_address[address] += 1
        try:
            await session.run(handler)
        finally:
            self.sessions.discard(session)
            self.connections_per_address[address] -= 1
            if not self.connections_per_address[address]:
                del self.connections_per_address[address]

    def _refusal(self, scope: WebsocketScope, address: str) -> Handler | None:
        """A handler that closes a connection the server will not serve, or None.

        Refusals are close codes, sent after the upgrade: 1001 while shutting
        down, 4429 over ``max_connections`` or, from client ``address``, over
        ``max_connections_per_address``, 4403 for an Origin not in
        ``allowed_origins`` (a request without Origin, a bot, is allowed). A
        refused connection does not count against either cap.
        """
        if self.shutting_down:
            return _refuse(CloseCode.GOING_AWAY, "server shutting down")
        if len(self.sessions) >= self.settings.max_connections:
            return _refuse(CloseCode.TOO_MANY, "too many connections: try again later")
        if self.connections_per_address[address] >= self.settings.max_connections_per_address:
            return _refuse(
                CloseCode.TOO_MANY, "too many connections from your address: try again later"
            )
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


def _address(scope: WebsocketScope) -> str:
    """The client's address (host only) from the ASGI scope; ``?`` if unknown."""
    client = scope.get("client")
    return client[0] if client else "?"


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
