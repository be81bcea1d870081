"""Scale-out fixtures: a real ``redis-server`` and duorelay processes sharing it.

Run by ``nox -s scaleout`` (skipped with a message when ``redis-server`` is not
installed, except in CI, where it fails). Each test gets its own Redis on a
free port; each duorelay is ``python -m duorelay`` in its own process, so
processes share nothing but Redis, as on separate machines.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import coredis
import pytest
import trio

from conftest import DUORELAY, Process, Server, server_process

REDIS_SERVER = shutil.which("redis-server")

FAST = {
    # Tests send thousands of frames at once: lift the rate limit.
    "DUORELAY_MAX_RATE": "1000000",
    "DUORELAY_MAX_BURST": "1000000",
}


NO_PERSISTENCE = ("--save", "", "--appendonly", "no", "--notify-keyspace-events", "Ex")
"""Forget everything on a restart; publish key expiries (tests wait for them)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` on loopback without persistence; stoppable and restartable
    on the same port (a restart loses every key, as a real restart without
    persistence does)."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._nursery = nursery
        self._process: trio.Process | None = None

    async def start(self) -> None:
        assert REDIS_SERVER is not None
        process = await trio.lowlevel.open_process(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._process = process
        assert process.stdout is not None
        seen = b""
        while b"Ready to accept connections" not in seen:
            chunk = await process.stdout.receive_some()
            assert chunk, f"redis-server exited:\n{seen.decode()}"
            seen += chunk
        self._nursery.start_soon(_discard, process.stdout)

    async def stop(self) -> None:
        """Kill Redis (SIGKILL: no goodbye to its clients)."""
        if self._process is not None:
            self._process.kill()
            await self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Freeze Redis (SIGSTOP): connections are still accepted by the kernel,
        but nothing is answered until :meth:`resume`."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused Redis run again (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[coredis.Redis[bytes]]:
        client: coredis.Redis[bytes] = coredis.Redis.from_url(self.url)
        async with client:
            yield client


async def _discard(stream: trio.abc.ReceiveStream) -> None:
    """Read (and drop) Redis's log so it never blocks on a full pipe; ends, and
    closes the pipe, when the process exits. Runs in the test's nursery."""
    async with stream:
        while await stream.receive_some():
            pass


@pytest.fixture
async def redis(nursery: trio.Nursery) -> AsyncIterator[RedisServer]:
    """A fresh Redis for this test; skipped without ``redis-server`` (not in CI)."""
    if REDIS_SERVER is None:
        message = "redis-server not found: apt-get install redis-server to run these tests"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(nursery)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


CONNECTED = re.compile(rb"backplane connected to ")


@asynccontextmanager
async def duorelays(
    redis: RedisServer, count: int, **env: str
) -> AsyncIterator[list[tuple[Process, Server]]]:
    """``count`` duorelay processes on ``redis``, each connected to it."""
    async with AsyncExitStack() as stack:
        processes = []
        for _ in range(count):
            proc, server = await stack.enter_async_context(
                server_process(*DUORELAY, DUORELAY_REDIS_URL=redis.url, **{**FAST, **env})
            )
            await proc.read_next(CONNECTED)
            processes.append((proc, server))
        yield processes


def joined(room: str, seat: int, ns: str = "default") -> re.Pattern[bytes]:
    """The log line of a join (logged once the seat is held cluster-wide)."""
    return re.compile(rf"joined ns='{ns}' room='{room}' seat={seat}\b".encode())


POLL_INTERVAL = 0.02


POLL_TIMEOUT = 10.0


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` is true, asking every :data:`POLL_INTERVAL` seconds.

    Only for the state of another process (its metrics, Redis), which sends no
    event a test could wait on; fails after :data:`POLL_TIMEOUT` seconds.
    """
    with trio.fail_after(POLL_TIMEOUT):
        while not await check():  # noqa: ASYNC110 (no event crosses processes)
            await trio.sleep(POLL_INTERVAL)
