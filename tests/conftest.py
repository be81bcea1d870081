"""Test fixtures: the real app on real Hypercorn, on an ephemeral port.

Every test talks to the server over TCP with a real websocket client
(trio-websocket, or :class:`RawClient` for what it cannot do: abrupt resets,
frames it would refuse to send). Server and clients run in the same trio run,
so :func:`settle` is an exact barrier: it returns once every task, the server's
included, is blocked and no socket has data ready.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trio.lowlevel
import trio.testing
import wsproto
import wsproto.events as ws_events
import wsproto.utilities
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

from duorelay.app import DuoRelay, create_app
from duorelay.cli import RelayConfig
from duorelay.settings import Settings
from duorelay.store.accounts import now
from duorelay.store.gateway import Store
from duorelay.store.schema import matches

pytest_plugins = ["postgres"]
"""tests/postgres.py: the ``database_url`` fixture (SQLite and PostgreSQL) and the
throwaway PostgreSQL cluster behind it."""

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT / "src" / "duorelay" / "static"
"""The demo site, shipped in the package: the default ``DUORELAY_STATIC_DIR``."""


async def settle() -> None:
    """Wait until every task is blocked and no I/O is ready.

    On loopback a sent frame is in the peer's socket buffer when ``send``
    returns, so after this everything sent so far has been processed.
    """
    await trio.testing.wait_all_tasks_blocked()


@dataclass
class Server:
    """A running duorelay server: its app and its ``host:port``."""

    app: DuoRelay
    address: str

    def url(self, path: str = "/ws") -> str:
        return f"ws://{self.address}{path}"

    def http(self, path: str) -> str:
        return f"http://{self.address}{path}"

    @asynccontextmanager
    async def connect(
        self, path: str = "/ws", headers: list[tuple[bytes, bytes]] | None = None
    ) -> AsyncIterator[WebSocketConnection]:
        """A trio-websocket client; its TCP stream is closed on exit however
        the websocket ended (trio-websocket leaves it open when the server
        closes first, and a ResourceWarning follows).

        trio-websocket 0.12 answers a server's ping with a pong even while it
        is closing, which wsproto refuses (``LocalProtocolError``) in its
        reader task: a server pinging at the moment the client closes (the
        tests with a short ping interval) would fail the test. That one error
        of the client library is ignored; any other is raised."""
        try:
            async with trio.open_nursery() as nursery:
                ws = await connect_websocket_url(nursery, self.url(path), extra_headers=headers)
                try:
                    yield ws
                finally:
                    await ws.aclose()
                    await ws._close_stream()
        except* wsproto.utilities.LocalProtocolError as group:
            late_pongs = [e for e in group.exceptions if PONG_WHILE_CLOSING in str(e)]
            if len(late_pongs) != len(group.exceptions):
                raise

    @asynccontextmanager
    async def join(self, room: str, seat: int, path: str = "/ws") -> AsyncIterator[Any]:
        """A client that has sent the join ``* room_seat``."""
        async with self.connect(path) as ws:
            await ws.send_message(f"* {room}_{seat}")
            yield ws


PONG_WHILE_CLOSING = (
    "Event Pong(payload=b'') cannot be sent in state ConnectionState.LOCAL_CLOSING"
)
"""What wsproto says when trio-websocket answers a ping while it closes."""

StartServer = Callable[..., Any]


@pytest.fixture
async def start_server(nursery: trio.Nursery, tmp_path: Path) -> StartServer:
    """Start a server with the given settings overrides; stopped after the test.

    Its database is a file of the test's own folder (created only if used),
    never one in the working directory."""

    async def start(**overrides: Any) -> Server:
        defaults = {
            "static_dir": STATIC_DIR,
            "database_url": f"sqlite:///{tmp_path / 'db'}",
            # Tests log in often from one address; the limits' own tests set them.
            "password_profile": "cheapest",
            "login_burst": 1000,
        }
        settings = Settings(**{**defaults, **overrides})
        app = create_app(settings)
        config = RelayConfig(settings)
        config.bind = ["127.0.0.1:0"]
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
        )
        return Server(app=app, address=binds[0].removeprefix("http://"))

    return start


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    """A server with default settings."""
    return await start_server()  # type: ignore[no-any-return]


class LogWatch(logging.Handler):
    """Collects the ``duorelay`` logger's records; tasks can wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._lot = trio.lowlevel.ParkingLot()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._lot.unpark_all()

    def events(self, event: str, **fields: object) -> list[logging.LogRecord]:
        """Records of ``event`` whose structured fields match ``fields``."""
        return [
            record
            for record in self.records
            if getattr(record, "event", None) == event
            and all(getattr(record, key, None) == value for key, value in fields.items())
        ]

    async def wait_for(self, event: str, count: int = 1, **fields: object) -> logging.LogRecord:
        """Wait until ``count`` records of ``event`` matching ``fields`` were logged."""
        while len(found := self.events(event, **fields)) < count:
            await self._lot.park()
        return found[count - 1]


LIVE_MATCH = "c" * 32
"""The id of the live match row in ``match_store``."""


@pytest.fixture
async def match_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store in the test's folder, with one live match
    (``LIVE_MATCH``, game ``test``, players ``x`` and ``o``)."""
    store = Store(f"sqlite:///{tmp_path / 'duorelay.db'}")
    await store.migrate()
    await store.run(
        lambda c: c.execute(
            matches.insert().values(
                id=LIVE_MATCH, game="test", players=["x", "o"], status="live", created_at=now()
            )
        )
    )
    yield store
    store.close()


@pytest.fixture
def server_log() -> Iterator[LogWatch]:
    """Every line the server logs during the test, as records."""
    watch = LogWatch()
    logger = logging.getLogger("duorelay")
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)


async def closed_with(ws: WebSocketConnection) -> tuple[int, str | None]:
    """Read until the server closes ``ws``; return the close code and reason."""
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed as closed:
        assert closed.reason is not None
        return closed.reason.code, closed.reason.reason


class RawClient:
    """A bare websocket client on wsproto: sends what it is told, resets on demand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.events: list[ws_events.Event] = []

    @classmethod
    async def open(cls, server: Server, path: str = "/ws", source: str | None = None) -> RawClient:
        """Connect (from address ``source``, default any) and complete the
        websocket handshake."""
        client = await cls.handshake(server, path, source)
        event = await client.next_event()
        assert isinstance(event, ws_events.AcceptConnection), event
        return client

    @classmethod
    async def handshake(cls, server: Server, path: str, source: str | None = None) -> RawClient:
        """Connect and send the upgrade request; the answer is the next event."""
        host, port = server.address.rsplit(":", 1)
        client = cls(await trio.open_tcp_stream(host, int(port), local_address=source))
        await client._send(ws_events.Request(host=server.address, target=path))
        return client

    async def _send(self, event: ws_events.Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def send(self, frame: str | bytes) -> None:
        event = (
            ws_events.TextMessage(frame)
            if isinstance(frame, str)
            else ws_events.BytesMessage(frame)
        )
        await self._send(event)

    async def next_event(self) -> ws_events.Event:
        """The next event from the server, skipping pings: this client never
        answers them (a client that stopped responding, to the server)."""
        while True:
            while not self.events:
                data = await self.stream.receive_some()
                self.ws.receive_data(data or None)
                self.events.extend(self.ws.events())
            event = self.events.pop(0)
            if not isinstance(event, ws_events.Ping):
                return event

    def reset(self) -> None:
        """Drop the TCP connection with a RST, no close frame (SO_LINGER 0)."""
        self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.stream.socket.close()

    async def closed(self) -> tuple[int, str | None]:
        """Read until the server's close frame; its code and reason."""
        while not isinstance(event := await self.next_event(), ws_events.CloseConnection):
            pass
        return event.code, event.reason


async def ws_refused(server: Server, path: str) -> int:
    """Ask to open websocket ``path``; the HTTP status of the server's refusal."""
    client = await RawClient.handshake(server, path)
    async with client.stream:
        event = await client.next_event()
    assert isinstance(event, ws_events.RejectConnection), event
    return event.status_code


async def http_get(
    server: Server, raw_path: str, source: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET ``raw_path`` exactly as given (no dot-segment normalisation), with h11,
    from client address ``source`` (default: any; 127.0.0.2 is another client
    on Linux loopback)."""
    return await http_request(server, "GET", raw_path, [("Host", server.address)], source=source)


async def http_request(
    server: Server,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    source: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with h11: ``raw_path`` and ``headers`` (``Host`` included) sent
    exactly as given, then ``body``; from client address ``source`` (as
    :func:`http_get`). ``(status, headers (lowercase names), body)``."""
    host, port = server.address.rsplit(":", 1)
    connection = h11.Connection(h11.CLIENT)
    async with await trio.open_tcp_stream(host, int(port), local_address=source) as stream:
        request = h11.Request(method=method, target=raw_path, headers=headers)
        await stream.send_all(
            connection.send(request)
            + (connection.send(h11.Data(data=body)) if body else b"")
            + connection.send(h11.EndOfMessage())
        )
        status, answer, content = 0, {}, b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, answer, content


class Flood:
    """Sends ``count`` binary frames of 64 KiB from ``ws``; ``sent`` counts the
    frames handed to the socket. Start :meth:`run` in a nursery."""

    def __init__(self, ws: WebSocketConnection, count: int = 400) -> None:
        self.ws = ws
        self.count = count
        self.sent = 0

    async def run(self) -> None:
        for _ in range(self.count):
            await self.ws.send_message(bytes(65536))
            self.sent += 1

    @property
    def done(self) -> bool:
        return self.sent == self.count


def all_tasks() -> list[trio.lowlevel.Task]:
    """Every task of this trio run, the server's included."""
    tasks: list[trio.lowlevel.Task] = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        assert task is not None
        tasks.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return tasks


def task_names() -> list[str]:
    return sorted(task.name for task in all_tasks())


SERVICE_TASKS = (
    "RefereeStore.hold",
    "Matches.run",
    "GroupCommit.run",
    "XoService.run",
    "UtttService.run",
    "uttt_sweep.sweep",
)
"""Tasks of the serving nursery that live as long as the server, not a connection."""


def leftover_tasks() -> list[str]:
    """duorelay's tasks now, but for the :data:`SERVICE_TASKS`: after everyone
    left, none should be there."""
    return [
        name for name in task_names() if "duorelay" in name and not name.endswith(SERVICE_TASKS)
    ]


def tasks_in(function: str) -> list[trio.lowlevel.Task]:
    """Tasks whose current await chain passes through ``function``."""
    found = []
    for task in all_tasks():
        coro: object = task.coro
        while coro is not None:
            frame = getattr(coro, "cr_frame", None)
            if frame is not None and frame.f_code.co_name == function:
                found.append(task)
            coro = getattr(coro, "cr_await", None)
    return found


RUNNING = re.compile(rb"Running on http://(127\.0\.0\.1:\d+)")
DUORELAY = (sys.executable, "-m", "duorelay", "--bind", "127.0.0.1:0")
"""The README's run command, on an ephemeral port."""


class Process:
    """A server subprocess and everything it printed on stderr so far.

    A task of :func:`server_process` reads stderr as it comes (so a chatty
    server never blocks on a full pipe); tests wait for lines in it.
    """

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stderr = b""
        self._positions: dict[bytes, int] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._ended = trio.Event()

    async def collect(self) -> None:
        assert self.process.stderr is not None
        try:
            while chunk := await self.process.stderr.receive_some():
                self.stderr += chunk
                self._lot.unpark_all()
        finally:
            self._ended.set()
            self._lot.unpark_all()

    async def read_until(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        """The first match of ``pattern`` in stderr, waiting for it if needed."""
        while (found := pattern.search(self.stderr)) is None:
            assert not self._ended.is_set(), f"the server exited:\n{self.stderr.decode()}"
            await self._lot.park()
        return found

    async def read_next(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        """The next match of ``pattern`` after its previous ``read_next`` match
        (each pattern has its own place, so tasks may wait for different lines)."""
        start = self._positions.get(pattern.pattern, 0)
        while (found := pattern.search(self.stderr, start)) is None:
            assert not self._ended.is_set(), f"the server exited:\n{self.stderr.decode()}"
            await self._lot.park()
        self._positions[pattern.pattern] = found.end()
        return found

    async def read_to_end(self) -> None:
        await self._ended.wait()


@asynccontextmanager
async def server_process(
    *args: str, cwd: Path = ROOT, **env: str
) -> AsyncIterator[tuple[Process, Server]]:
    """Run ``args`` (a server command) in ``cwd`` (default: the repository folder)
    until it exits; killed (SIGKILL) on exit if still running. Its database is
    ``DUORELAY_DATABASE_URL`` if given, else a file in a temporary folder
    (removed after), never one in the repository."""
    with tempfile.TemporaryDirectory() as folder:
        env.setdefault("DUORELAY_DATABASE_URL", f"sqlite:///{Path(folder) / 'duorelay.db'}")
        async with _server_process(list(args), cwd, env) as running:
            yield running


@asynccontextmanager
async def _server_process(
    args: list[str], cwd: Path, env: dict[str, str]
) -> AsyncIterator[tuple[Process, Server]]:
    process = await trio.lowlevel.open_process(
        args,
        cwd=cwd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    running = Process(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(running.collect)
            address = (await running.read_until(RUNNING)).group(1).decode()
            yield running, Server(app=None, address=address)  # type: ignore[arg-type]
            if process.returncode is None:
                process.kill()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        assert process.stderr is not None
        await process.stderr.aclose()
