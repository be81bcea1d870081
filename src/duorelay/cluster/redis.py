"""The Redis backplane: rooms shared by every process connected to one Redis.

:class:`RedisBackplane` implements :class:`duorelay.core.backplane.Backplane`
(``DUORELAY_REDIS_URL``). A *lease* (:mod:`duorelay.cluster.leases`) is a Redis
key naming its owner; an *address* is a Redis pub/sub channel that the process
holding a seat (or a room) subscribes to; other processes publish messages
(:mod:`duorelay.protocols.cluster`) to it through the publish queue
(:mod:`duorelay.cluster.publisher`).

Task tree (owned by the app's serving nursery)::

    RedisBackplane.run             connects, and reconnects with backoff
     └─ connection nursery         one per Redis connection, cancelled on any failure
         ├─ _drain                 pub/sub -> decode -> deliver() -> the receivers' inboxes
         ├─ Publisher.run          publish queue -> Redis, in order
         └─ _maintain              renew leases, release keys, unsubscribe

coredis buffers pub/sub messages without bound; ``_drain`` empties that buffer
as fast as Redis fills it, because ``deliver`` never waits: a receiver whose
inbox is full is closed (4430), never waited for.

Failure: any Redis error or a command slower than :data:`REDIS_TIMEOUT`
cancels the connection nursery. Until the next connection succeeds,
:attr:`RedisBackplane.available` is False, a join waits for it in
:meth:`RedisBackplane.wait_available` (``DUORELAY_BACKPLANE_WAIT`` seconds at
most), then ``acquire``, ``listen`` and ``send`` raise
:class:`~duorelay.core.backplane.BackplaneUnavailable` (the handler closes
with 1013), every listener's ``on_lost`` is called (messages to it may
have been lost), and the senders of queued messages are closed with 1013. Once
connected again, the process resubscribes its addresses and renews its leases
(re-creating the keys a restarted Redis lost).

A bug in one of the tasks (an exception that is not a Redis error) is handled
the same way, after its traceback is logged; it is also counted
(``duorelay_backplane_errors_total{kind="task"}``), the reconnect backs off as
for an unreachable Redis, and :attr:`RedisBackplane.fault` names it, so
``/healthz`` says ``"degraded"``, until a connection has served
:data:`HEALTHY_AFTER` seconds without one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import coredis
import coredis.exceptions
import trio

from duorelay.cluster import buckets, run_callback
from duorelay.cluster.leases import Leases
from duorelay.cluster.publisher import Publisher
from duorelay.core.backplane import Backplane, BackplaneUnavailable, Deliver, Sender
from duorelay.observability import Stats
from duorelay.protocols.cluster import BadClusterMessage, ClusterMessage, decode, encode, is_frame

log = logging.getLogger("duorelay")

T = TypeVar("T")

REDIS_TIMEOUT = 2.0
"""Seconds one Redis command or pipeline may take before Redis counts as lost."""

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds between attempts to reach a lost Redis; the last one repeats."""

HEALTHY_AFTER = 60.0
"""Seconds a connection to Redis must serve without a bug in the backplane's
tasks before the last such bug is forgotten (:attr:`RedisBackplane.fault`)."""

REDIS_ERRORS = (
    coredis.exceptions.RedisError,
    OSError,
    trio.TooSlowError,
    TimeoutError,
    anyio.ClosedResourceError,  # coredis writing to a connection it has closed
    anyio.BrokenResourceError,
)
"""What a Redis command raises when Redis is out of reach or too slow."""


@dataclass(slots=True)
class _Listener:
    deliver: Deliver
    on_lost: Callable[[], None]
    on_back: Callable[[], None] | None
    live: bool = False
    """False until Redis confirmed this listener's SUBSCRIBE: messages before
    that were published for an earlier listener of the address."""


class RedisBackplane(Backplane):
    """Rooms shared by every process connected to one Redis (``DUORELAY_REDIS_URL``).

    ``url`` is a redis://, rediss:// or unix:// URL; ``prefix`` starts every
    key and channel name (several deployments may share one Redis);
    ``lease`` is the lease time in seconds. ``node`` is this process's random
    id (12 hex digits), the start of each token it writes, so a process can
    tell its own keys and messages.
    """

    shared = True

    def __init__(self, url: str, prefix: str, lease: float, stats: Stats) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self.lease = lease
        self.stats = stats
        self.node = secrets.token_hex(6)
        self._node = self.node.encode()
        self._wake = trio.Event()
        self._leases = Leases(self._node, lease, self._wake_maintenance, stats)
        self._publisher = Publisher(stats, REDIS_TIMEOUT)
        self._listeners: dict[bytes, _Listener] = {}
        self._confirmations: dict[bytes, int] = {}  # SUBSCRIBE replies still to come
        self._unlistens: set[bytes] = set()
        self._client: coredis.Redis[bytes] | None = None
        self._pubsub: coredis.patterns.pubsub.PubSub[bytes] | None = None
        self._connection: trio.CancelScope | None = None
        self._connected = trio.Event()  # set while available; a new one when lost
        self._connected_at = 0.0  # trio time the current connection was made
        self._bugs = 0  # bugs in a row: connections ended by one, none healthy between
        self._bug = ""  # the last one
        self.failure = "not connected yet"
        """Why Redis is unavailable (empty while it is available)."""

    def _wake_maintenance(self) -> None:
        self._wake.set()

    @property
    def available(self) -> bool:
        """Whether Redis is connected now."""
        return self._pubsub is not None

    @property
    def fault(self) -> str:
        """The last bug in the backplane's tasks, with how many ended a connection
        in a row (``"RuntimeError: ... (3 in a row)"``); empty if there was none,
        or the connection since has served :data:`HEALTHY_AFTER` seconds."""
        if not self._bugs or self._healthy():
            return ""
        return f"{self._bug} ({self._bugs} in a row)"

    def _healthy(self) -> bool:
        """Whether the current connection has served :data:`HEALTHY_AFTER` seconds."""
        return self.available and self._served() >= HEALTHY_AFTER

    def _served(self) -> float:
        """Seconds since the current (or last) connection was made."""
        return trio.current_time() - self._connected_at

    def describe(self) -> dict[str, str | bool]:
        """For ``/healthz``: ``{"kind": "redis", "available", "error"?,
        "internal_error"?}``: ``error`` while Redis is unavailable, why;
        ``internal_error`` while :attr:`fault` is set, the bug."""
        info: dict[str, str | bool] = {"kind": "redis", "available": self.available}
        if not self.available:
            info["error"] = self.failure
        if fault := self.fault:
            info["internal_error"] = fault
        return info

    async def wait_available(self) -> None:
        """Return once Redis is connected: at once while it is, else when the
        connection being made succeeds. Waits without bound (the caller's
        cancel scope bounds it); counted in ``duorelay_backplane_waiting``
        meanwhile."""
        if self.available:
            return
        self.stats.backplane_waiting += 1
        try:
            while not self.available:  # a new connection may be lost again at once
                await self._connected.wait()
        finally:
            self.stats.backplane_waiting -= 1

    def name(self, key: str) -> bytes:
        """The Redis key or channel name of ``key``: ``{prefix}:{key}``, UTF-8."""
        return f"{self.prefix}:{key}".encode()

    # -- the interface used by handlers ------------------------------------

    async def acquire(self, key: str, on_lost: Callable[[], None], data: bytes = b"") -> bool:
        """Take ``key`` for this process; False if another process holds it.

        ``data`` is kept with the key for :meth:`lookup`. ``on_lost`` is
        called if the key is later found held by another process (this one
        lost Redis for longer than the lease). Raises
        :class:`BackplaneUnavailable` when Redis cannot be reached within
        :data:`REDIS_TIMEOUT` seconds.
        """
        if self._client is None or self._pubsub is None:
            raise BackplaneUnavailable(self.failure)  # nothing sent, nothing to release
        return await self._leases.acquire(self._command, self.name(key), on_lost, data)

    async def lookup(self, key: str) -> bytes | None:
        """The ``data`` of ``key`` if some process holds it, else None.

        Raises :class:`BackplaneUnavailable`.
        """
        value = await self._command(lambda client: client.get(self.name(key)))
        return None if value is None else value.partition(b" ")[2]

    def release(self, key: str) -> None:
        """Give ``key`` up: at once here, in Redis as soon as the maintenance task runs.

        Synchronous and idempotent. If Redis is out of reach, the key expires
        with its lease.
        """
        self._leases.release(self.name(key))

    async def charge(self, key: str, rate: float, burst: int, cost: int = 1) -> bool:
        """Whether token bucket ``key`` holds a token; if so, take ``cost`` (0 or 1).

        One bucket for the whole cluster (:mod:`duorelay.cluster.buckets`).
        While Redis is out of reach this process's own bucket of ``key`` is
        used instead (the in-process :meth:`Backplane.charge`). Never raises
        :class:`BackplaneUnavailable`.
        """
        try:
            return await buckets.charge(self._command, self.name(key), rate, burst, cost)
        except BackplaneUnavailable:
            return await super().charge(key, rate, burst, cost)

    async def listen(
        self,
        address: str,
        deliver: Deliver,
        on_lost: Callable[[], None],
        on_back: Callable[[], None] | None = None,
    ) -> None:
        """Subscribe to ``address``; returns once Redis confirmed the subscription.

        From then on, each message sent to ``address`` by any process is given
        to ``deliver`` (messages published before, for an earlier listener of
        the address, are not). ``on_lost`` is called when Redis is lost
        (messages to the address may have been lost), ``on_back`` when it is
        back. Raises :class:`BackplaneUnavailable`.
        """
        name = self.name(address)
        self._listeners[name] = _Listener(deliver, on_lost, on_back)
        self._unlistens.discard(name)
        try:
            await self._command(lambda _: self._subscribe(self._subscribed(), [name]))
        except BaseException:  # cleaned up, then re-raised (trio.Cancelled included)
            self.unlisten(address)
            raise

    async def _subscribe(
        self, pubsub: coredis.patterns.pubsub.PubSub[bytes], names: list[bytes]
    ) -> None:
        """SUBSCRIBE, counting the confirmations ``_drain`` must see before the
        listeners are live (Redis confirms each SUBSCRIBE, even a repeated one)."""
        for name in names:
            self._confirmations[name] = self._confirmations.get(name, 0) + 1
        await pubsub.subscribe(*names)
        _forget_waiters(pubsub, names)

    def unlisten(self, address: str) -> None:
        """Stop delivering messages to ``address``: at once here, in Redis soon."""
        name = self.name(address)
        if self._listeners.pop(name, None) is not None:
            self._unlistens.add(name)
            self._wake.set()

    def send_nowait(
        self,
        address: str,
        message: ClusterMessage,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
    ) -> None:
        """Queue ``message`` for whoever listens to ``address``, in order.

        Messages queued by one task reach each listener in the order queued.
        A message nobody listens to is dropped: ``on_absent`` is called, if
        given, else it is counted as ``absent_peer``. If Redis is lost before
        the message is published, ``sender`` is closed with 1013. Raises
        :class:`~duorelay.core.backplane.BackplaneUnavailable` while Redis is
        unavailable and, for a frame, ``trio.WouldBlock`` while the publish
        queue is full (:mod:`duorelay.cluster.publisher`).
        """
        if self._pubsub is None:
            raise BackplaneUnavailable(self.failure)
        kind, payload = encode(message)
        self._publisher.send_nowait(
            self.name(address),
            self._node + kind + payload,
            sender,
            on_absent,
            frame=is_frame(message),
        )

    async def send(
        self,
        address: str,
        message: ClusterMessage,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
    ) -> None:
        """Queue a frame with :meth:`send_nowait`, waiting while the publish
        queue is full (back-pressure on the sender)."""
        while True:
            try:
                self.send_nowait(address, message, sender, on_absent)
                return
            except trio.WouldBlock:
                await self._publisher.wait_for_room()

    # -- the tasks ----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection to Redis until cancelled (the app's shutdown).

        Reports started at once, before Redis is reached: the server serves
        locally held rooms without Redis; joins wait for it
        (:meth:`wait_available`), then get 1013. Reconnects after
        :data:`RECONNECT_DELAYS`: from the first delay again after a connection
        that was up, unless a bug ended it (then the delays go on growing).
        """
        task_status.started()
        attempt = 0
        try:
            while True:
                connected = await self._connect_and_serve()
                attempt = 0 if connected and not self.fault else attempt + 1
                await trio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
        finally:
            self._publisher.close()

    async def _connect_and_serve(self) -> bool:
        """One Redis connection, from connect to failure; True if it was up."""
        connected = False
        bug = ""
        try:
            with trio.CancelScope() as self._connection:
                client: coredis.Redis[bytes] = coredis.Redis.from_url(
                    self.url,
                    connect_timeout=REDIS_TIMEOUT,
                    stream_timeout=REDIS_TIMEOUT,
                    retry_policy=coredis.retry.NoRetryPolicy(),
                )
                async with client:
                    with trio.fail_after(REDIS_TIMEOUT):
                        await client.ping()
                    # No retries: coredis would reconnect and resubscribe silently,
                    # and messages published meanwhile would be lost without a sign.
                    async with client.pubsub(retry_policy=None) as pubsub:
                        with trio.fail_after(REDIS_TIMEOUT):
                            self._confirmations.clear()
                            for listener in self._listeners.values():
                                listener.live = False
                            if self._listeners:
                                await self._subscribe(pubsub, list(self._listeners))
                            self._client = client
                            await self._leases.renew(client)
                        self._pubsub = pubsub
                        connected = True
                        self.failure = ""
                        self._connected_at = trio.current_time()
                        self._connected.set()
                        log.info("backplane connected to %s node=%s", self.url, self.node)
                        for listener in list(self._listeners.values()):
                            if listener.on_back is not None:
                                run_callback(self.stats, listener.on_back)
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._drain, pubsub)
                            nursery.start_soon(self._publisher.run, client)
                            nursery.start_soon(self._maintain)
        except* REDIS_ERRORS as group:
            self._lose(_describe(group))
        except* Exception as group:  # a bug: logged, counted; run() reconnects after a pause
            log.error("backplane failed", exc_info=group)
            bug = _describe(group)
            self._lose(f"internal error: {bug}")
        finally:
            self._client = self._pubsub = self._connection = None
            if self._connected.is_set():  # cancelled: _lose() did not run
                self._connected = trio.Event()
            self._count_bugs(bug, served=self._served() if connected else 0.0)
        if not self.failure:
            self._lose("connection closed")
        return connected

    def _count_bugs(self, bug: str, served: float) -> None:
        """A connection that ``served`` seconds ended, by ``bug`` if not empty.

        A bug is one more in a row, or the first of a new row if the connection
        had served :data:`HEALTHY_AFTER` seconds; a connection that served that
        long and ended otherwise (Redis lost, shutdown) ends the row.
        """
        if bug:
            self._bugs = 1 if served >= HEALTHY_AFTER else self._bugs + 1
            self._bug = bug
            self.stats.backplane_errors["task"] += 1
        elif served >= HEALTHY_AFTER:
            self._bugs = 0
            self._bug = ""

    def _fail(self, reason: str) -> None:
        """Redis misbehaved: drop this connection (``run`` reconnects)."""
        if self._connection is not None:
            self._lose(reason)
            self._connection.cancel()

    def _lose(self, reason: str) -> None:
        """Redis is lost: refuse new work, tell every listener, fail queued senders."""
        self._pubsub = None
        if self._connected.is_set():
            self._connected = trio.Event()
        if reason != self.failure:
            log.warning("backplane unavailable: %s", reason)
            self.failure = reason
        for listener in list(self._listeners.values()):
            run_callback(self.stats, listener.on_lost)
        self._publisher.fail_queued()  # waiting senders now get BackplaneUnavailable

    async def _command(self, command: Callable[[coredis.Redis[bytes]], Awaitable[T]]) -> T:
        """Run one Redis command for a handler; a failure drops the connection
        (unless it is already another one: a command that outlived its
        connection must not drop the next)."""
        client, connection = self._client, self._connection
        if client is None or self._pubsub is None:
            raise BackplaneUnavailable(self.failure)
        try:
            with trio.fail_after(REDIS_TIMEOUT):
                return await command(client)
        except REDIS_ERRORS as error:
            if self._connection is connection:
                self._fail(_describe(error))
            raise BackplaneUnavailable(self.failure or _describe(error)) from error

    def _subscribed(self) -> coredis.patterns.pubsub.PubSub[bytes]:
        if self._pubsub is None:
            raise BackplaneUnavailable(self.failure)
        return self._pubsub

    async def _drain(self, pubsub: coredis.patterns.pubsub.PubSub[bytes]) -> None:
        """Hand each pub/sub message to its address's ``deliver``, without waiting."""
        node = self._node
        size = len(node)
        while True:
            message = await pubsub.get_message()
            if message is None or not isinstance(channel := message["channel"], bytes):
                continue
            listener = self._listeners.get(channel)
            if message["type"] == "subscribe":
                left = self._confirmations.pop(channel, 1) - 1
                if left > 0:
                    self._confirmations[channel] = left
                elif listener is not None:
                    listener.live = True
                continue
            data = message["data"]
            if message["type"] != "message" or not isinstance(data, bytes) or len(data) <= size:
                continue
            try:
                decoded = decode(data[size : size + 1], data[size + 1 :])
            except BadClusterMessage as error:
                log.warning("backplane: dropped a bad message on %r: %s", channel, error)
                continue
            if listener is None or not listener.live:
                # For an address unlistened here whose UNSUBSCRIBE is still on its
                # way, or for an earlier listener of it: its sender saw a
                # receiver, so the drop is counted here (rule 5).
                if is_frame(decoded):
                    self.stats.frames_dropped["absent_peer"] += 1
                continue
            run_callback(self.stats, listener.deliver, data[:size] == node, decoded)

    async def _maintain(self) -> None:
        """Release keys and unsubscribe as soon as asked; renew leases every lease/3 s."""
        renew_every = self.lease / 3
        next_renewal = trio.current_time() + renew_every
        while True:
            with trio.move_on_at(next_renewal):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                with trio.fail_after(REDIS_TIMEOUT):
                    await self._release_and_unlisten()
                    if trio.current_time() >= next_renewal and self._client is not None:
                        await self._leases.renew(self._client)
                        next_renewal = trio.current_time() + renew_every
            except REDIS_ERRORS as error:
                self._fail(_describe(error))
                return

    async def _release_and_unlisten(self) -> None:
        # An address listened to again since unlisten() stays subscribed.
        names = [name for name in self._unlistens if name not in self._listeners]
        self._unlistens.clear()
        if names and self._pubsub is not None:
            await self._pubsub.unsubscribe(*names)
            _forget_waiters(self._pubsub, names)
        if self._client is not None:
            await self._leases.flush(self._client)


def _forget_waiters(pubsub: coredis.patterns.pubsub.PubSub[bytes], names: list[bytes]) -> None:
    """Drop coredis' emptied (un)subscription waiter lists of ``names``.

    coredis 6 keeps one dict entry per channel ever (un)subscribed, until the
    connection closes: unbounded with many short-lived addresses. This reaches
    into its private state (checked with coredis 6.9; pinned below 7).
    """
    for waiters in (pubsub._subscription_waiters, pubsub._unsubscription_waiters):
        for name in names:
            if not waiters.get(name, True):
                del waiters[name]


def _describe(error: BaseException) -> str:
    """A one-line reason for a Redis failure, for logs and ``/healthz``."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    if isinstance(error, trio.TooSlowError):
        return f"Redis did not answer within {REDIS_TIMEOUT:g} s"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
