"""The backplane: what makes rooms span processes (ARCHITECTURE.md, "Scale-out").

A process keeps its rooms in its own :class:`~duorelay.rooms.Registry`; the
backplane is the layer under it that tells processes apart. Two
implementations share one interface:

- :class:`Backplane`, the default: this process is the whole cluster. Every
  lease is granted, nobody else listens, nothing is ever sent.
- :class:`RedisBackplane` (``DUORELAY_REDIS_URL``): processes share one Redis.
  A *lease* is a Redis key holding its owner's token for ``redis_lease``
  seconds, renewed by its owner every third of that, so whatever a dead
  process held is free again within one lease time. An *address* is a Redis
  pub/sub channel that the process holding a seat (or a room) subscribes to;
  other processes publish frames to it.

Two primitives are all a protocol handler needs:

- ``await acquire(key, on_lost, data)`` / ``release(key)``: exclusive
  ownership of ``key`` across the cluster (a seat: PROTOCOLS.md section 1,
  rule 3); ``await lookup(key)`` reads its ``data`` (a WMBP room's name).
- ``await listen(address, deliver, on_lost, on_back)`` / ``unlisten(address)``:
  ``deliver`` is called, synchronously, for each message a process sends to
  ``address`` with ``send`` / ``send_nowait(address, kind, payload, sender,
  on_absent)`` after the subscription was confirmed.

``release`` and ``unlisten`` are synchronous (they only queue the Redis work),
so a session calls them in ``finally`` blocks even while being cancelled
(invariant 6); the backplane's maintenance task does the Redis side at once.

Task tree of the Redis backplane (owned by the app's serving nursery)::

    RedisBackplane.run             connects, and reconnects with backoff
     └─ connection nursery         one per Redis connection, cancelled on any failure
         ├─ _drain                 pub/sub -> deliver() -> the receivers' inboxes
         ├─ _publish               publish queue -> Redis, pipelined, in order
         └─ _maintain              renew leases, release keys, unsubscribe

Channels: one, the publish queue, of :data:`PUBLISH_QUEUE` messages; its send
end is used by the readers of every session (``send``), its receive end by
``_publish``; both are closed by ``run`` when the backplane stops. coredis
buffers pub/sub messages without bound; ``_drain`` empties that buffer as fast
as Redis fills it, because ``deliver`` never waits: a receiver whose outbox is
full is closed (4430), never waited for.

Failure: any Redis error or a command slower than :data:`REDIS_TIMEOUT`
cancels the connection nursery. Until the next connection succeeds,
:attr:`RedisBackplane.available` is False, ``acquire``, ``listen`` and ``send``
raise :class:`BackplaneUnavailable` (the handler closes with 1013), every
listener's ``on_lost`` is called (frames to it may have been lost), and the
senders of queued messages are closed with 1013. Once connected again, the
process resubscribes its addresses and renews its leases (re-creating the keys
a restarted Redis lost).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio
import coredis
import coredis.exceptions
import trio

from duorelay.metrics import Stats
from duorelay.protocols import CloseCode

log = logging.getLogger("duorelay")

T = TypeVar("T")

PUBLISH_QUEUE = 1024
"""Frames that may wait for the publisher (each at most ``max_message_size``
bytes); a sender of frames (a Kamon seat, a WMBP host or client) waits while
that many are queued. Control messages (``control=True``: joins, answers,
closes, leaves; at most a few per connection) are never refused and queue
behind the frames already there."""

PUBLISH_BATCH = 256
"""Most messages sent to Redis in one pipeline."""

REDIS_TIMEOUT = 2.0
"""Seconds one Redis command or pipeline may take before Redis counts as lost."""

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds between attempts to reach a lost Redis; the last one repeats."""

UNAVAILABLE = "backplane unavailable: try again later"
"""The close reason sent with 1013 when Redis is out of reach."""

REDIS_ERRORS = (
    coredis.exceptions.RedisError,
    OSError,
    trio.TooSlowError,
    TimeoutError,
    anyio.ClosedResourceError,  # coredis writing to a connection it has closed
    anyio.BrokenResourceError,
)
"""What a Redis command raises when Redis is out of reach or too slow."""

# One key: take it if it is free or held by this process (an earlier holder
# whose release is still queued), else refuse. ARGV: token, node prefix, lease ms.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, #ARGV[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

# Delete the key only if it still holds this token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Renew each key still holding its token, re-create keys that vanished (a
# restarted Redis); returns the 1-based indexes of keys someone else holds now.
# ARGV: one token per key, then the lease in ms.
_RENEW = """
local lost = {}
local lease = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false or holder == ARGV[i] then
    redis.call('SET', key, ARGV[i], 'PX', lease)
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

RENEW_CHUNK = 500
"""Keys renewed per script call."""


TEXT, BINARY = b"t", b"b"
"""The kind byte of a websocket frame sent through the backplane."""


def pack_frame(frame: str | bytes) -> tuple[bytes, bytes]:
    """A websocket frame as a message's ``(kind, payload)``: text as UTF-8."""
    return (TEXT, frame.encode()) if isinstance(frame, str) else (BINARY, frame)


def unpack_frame(kind: bytes, payload: bytes) -> str | bytes:
    """The frame :func:`pack_frame` packed (``kind`` is :data:`TEXT` or :data:`BINARY`)."""
    return payload.decode() if kind == TEXT else payload


class BackplaneUnavailable(Exception):
    """The backplane cannot be reached now (close code 1013, "try again later")."""


class Sender(Protocol):
    """Who sent a message: closed with 1013 if the message cannot be published."""

    def close(self, code: int, reason: str, *, flush: bool = False) -> None: ...


Deliver = Callable[[bool, bytes, bytes], None]
"""``deliver(from_here, kind, payload)``: a message for an address.

``from_here`` is True when this process sent it; ``kind`` is the one byte
the sender gave. It must not await: it runs in the drain task of every address.
"""


@dataclass(slots=True)
class _Lease:
    value: bytes
    on_lost: Callable[[], None]


_Message = tuple["Sender | None", bytes, bytes, "Callable[[], None] | None", bool]
"""A queued message: sender, channel name, data, on_absent, whether it is a frame
(counted against :data:`PUBLISH_QUEUE`)."""


@dataclass(slots=True)
class _Listener:
    deliver: Deliver
    on_lost: Callable[[], None]
    on_back: Callable[[], None] | None
    live: bool = False
    """False until Redis confirmed this listener's SUBSCRIBE: messages before
    that were published for an earlier listener of the address."""


class Backplane:
    """The in-process backplane: this process is the whole cluster (the default).

    Every method keeps the interface of :class:`RedisBackplane`: leases are
    always granted (the registry already refused a seat held here), and there
    is nobody to send to, so ``send`` is never called (``shared`` is False).
    """

    shared = False
    """Whether other processes share the rooms (False: never send or listen)."""

    node = "local"
    """This process's id in the cluster (in addresses that must be unique)."""

    @property
    def available(self) -> bool:
        return True

    def describe(self) -> dict[str, str | bool]:
        """For ``/healthz``: ``{"kind", "available"}``."""
        return {"kind": "in-process", "available": True}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to run in-process."""
        task_status.started()

    async def acquire(self, key: str, on_lost: Callable[[], None], data: bytes = b"") -> bool:
        return True

    async def lookup(self, key: str) -> bytes | None:
        return None

    def release(self, key: str) -> None:
        pass

    async def listen(
        self,
        address: str,
        deliver: Deliver,
        on_lost: Callable[[], None],
        on_back: Callable[[], None] | None = None,
    ) -> None:
        pass

    def unlisten(self, address: str) -> None:
        pass

    def send_nowait(
        self,
        address: str,
        kind: bytes,
        payload: bytes,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
        *,
        control: bool = False,
    ) -> None:
        raise RuntimeError("the in-process backplane has nobody to send to")

    async def send(
        self,
        address: str,
        kind: bytes,
        payload: bytes,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
    ) -> None:
        raise RuntimeError("the in-process backplane has nobody to send to")


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
        self.url = url
        self.prefix = prefix
        self.lease = lease
        self.stats = stats
        self.node = secrets.token_hex(6)
        self._node = self.node.encode()
        self._lease_ms = max(1, round(lease * 1000))
        self._tokens = (self._node + b":%d" % n for n in range(1, 1 << 62))
        self._leases: dict[bytes, _Lease] = {}
        self._listeners: dict[bytes, _Listener] = {}
        self._confirmations: dict[bytes, int] = {}  # SUBSCRIBE replies still to come
        self._releases: list[tuple[bytes, bytes]] = []
        self._unlistens: set[bytes] = set()
        self._wake = trio.Event()
        self._client: coredis.Redis[bytes] | None = None
        self._pubsub: coredis.patterns.pubsub.PubSub[bytes] | None = None
        self._connection: trio.CancelScope | None = None
        # Unbounded as a channel; frames are bounded by _frames_queued (see send()).
        self._queue, self._queue_out = trio.open_memory_channel[_Message](math.inf)
        self._frames_queued = 0
        self._room = trio.lowlevel.ParkingLot()  # frame senders waiting for room
        self.failure = "not connected yet"
        """Why Redis is unavailable (empty while it is available)."""

    @property
    def available(self) -> bool:
        """Whether Redis is connected now."""
        return self._pubsub is not None

    def describe(self) -> dict[str, str | bool]:
        info: dict[str, str | bool] = {"kind": "redis", "available": self.available}
        if not self.available:
            info["error"] = self.failure
        return info

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
        name = self.name(key)
        value = next(self._tokens) + b" " + data
        if self._client is None or self._pubsub is None:
            raise BackplaneUnavailable(self.failure)  # nothing sent, nothing to release
        try:
            result = await self._command(
                lambda client: client.eval(
                    _ACQUIRE, keys=[name], args=[value, self._node + b":", self._lease_ms]
                )
            )
        except BaseException:  # cleaned up, then re-raised (trio.Cancelled included)
            # Cancelled or failed after Redis may have set the key: release it
            # (the script deletes it only if it still holds this value).
            self._releases.append((name, value))
            self._wake.set()
            raise
        if result != 1:
            return False
        self._leases[name] = _Lease(value, on_lost)
        return True

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
        lease = self._leases.pop(self.name(key), None)
        if lease is not None:
            self._releases.append((self.name(key), lease.value))
            self._wake.set()

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
        kind: bytes,
        payload: bytes,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
        *,
        control: bool = False,
    ) -> None:
        """Queue a message for whoever listens to ``address``, in order.

        ``kind`` is one byte, given to ``deliver`` with ``payload``. Messages
        queued by one task reach each listener in the order queued. A message
        nobody listens to is dropped: ``on_absent`` is called, if given, else
        it is counted as ``absent_peer``. If Redis is lost before the message
        is published, ``sender`` is closed with 1013. Raises
        :class:`BackplaneUnavailable` while Redis is unavailable and, for a
        frame (not ``control``), ``trio.WouldBlock`` when
        :data:`PUBLISH_QUEUE` frames are queued.
        """
        if self._pubsub is None:
            raise BackplaneUnavailable(self.failure)
        if not control:
            if self._frames_queued >= PUBLISH_QUEUE:
                raise trio.WouldBlock
            self._frames_queued += 1
        data = self._node + kind + payload
        self._queue.send_nowait((sender, self.name(address), data, on_absent, not control))

    async def send(
        self,
        address: str,
        kind: bytes,
        payload: bytes,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
    ) -> None:
        """Queue a frame with :meth:`send_nowait`, waiting while
        :data:`PUBLISH_QUEUE` frames are queued (back-pressure on the sender)."""
        while True:
            try:
                self.send_nowait(address, kind, payload, sender, on_absent)
                return
            except trio.WouldBlock:
                await self._room.park()

    # -- the tasks ----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection to Redis until cancelled (the app's shutdown).

        Reports started at once, before Redis is reached: the server serves
        locally held rooms without Redis, and refuses joins with 1013.
        """
        task_status.started()
        attempt = 0
        try:
            while True:
                connected = await self._connect_and_serve()
                attempt = 0 if connected else attempt + 1
                await trio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
        finally:
            self._queue.close()
            self._queue_out.close()

    async def _connect_and_serve(self) -> bool:
        """One Redis connection, from connect to failure; True if it was up."""
        connected = False
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
                            await self._renew()
                        self._pubsub = pubsub
                        connected = True
                        self.failure = ""
                        log.info("backplane connected to %s node=%s", self.url, self.node)
                        for listener in list(self._listeners.values()):
                            if listener.on_back is not None:
                                _call(listener.on_back)
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._drain, pubsub)
                            nursery.start_soon(self._publish, client)
                            nursery.start_soon(self._maintain)
        except* REDIS_ERRORS as group:
            self._lose(_describe(group))
        except* Exception as group:  # a bug: logged; run() reconnects after a pause
            log.error("backplane failed", exc_info=group)
            self._lose(f"internal error: {_describe(group)}")
        finally:
            self._client = self._pubsub = self._connection = None
        if not self.failure:
            self._lose("connection closed")
        return connected

    def _fail(self, reason: str) -> None:
        """Redis misbehaved: drop this connection (``run`` reconnects)."""
        if self._connection is not None:
            self._lose(reason)
            self._connection.cancel()

    def _lose(self, reason: str) -> None:
        """Redis is lost: refuse new work, tell every listener, fail queued senders."""
        self._pubsub = None
        if reason != self.failure:
            log.warning("backplane unavailable: %s", reason)
            self.failure = reason
        for listener in list(self._listeners.values()):
            _call(listener.on_lost)
        while True:
            try:
                sender, _, _, _, _ = self._queue_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if sender is not None:
                _call(sender.close, CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
        self._frames_queued = 0
        self._room.unpark_all()  # waiting senders now get BackplaneUnavailable

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
            if message["type"] != "message" or listener is None or not listener.live:
                continue  # for an earlier listener of the address, or none
            if isinstance(data, bytes) and len(data) > size:
                _call(
                    listener.deliver, data[:size] == node, data[size : size + 1], data[size + 1 :]
                )

    async def _publish(self, client: coredis.Redis[bytes]) -> None:
        """Publish queued messages in order, up to :data:`PUBLISH_BATCH` at a time.

        One connection of the pool is this task's for its whole life: the
        batch's PUBLISH commands are written in order on it, then their
        replies (receiver counts) awaited. (coredis' ``Pipeline`` costs about
        three times as much CPU per message; see docs/benchmarks.md.)
        """
        async with client.connection_pool.acquire() as connection:
            while True:
                batch = [await self._queue_out.receive()]
                while len(batch) < PUBLISH_BATCH:
                    try:
                        batch.append(self._queue_out.receive_nowait())
                    except trio.WouldBlock:
                        break
                self._frames_queued -= sum(1 for *_, frame in batch if frame)
                self._room.unpark_all()
                try:
                    with trio.fail_after(REDIS_TIMEOUT):
                        requests = [
                            connection.create_request(b"PUBLISH", name, data)
                            for _, name, data, _, _ in batch
                        ]
                        counts = [await request for request in requests]
                except REDIS_ERRORS as error:
                    for sender, _, _, _, _ in batch:
                        if sender is not None:
                            _call(sender.close, CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
                    self._fail(_describe(error))
                    return
                for (_, _, _, on_absent, _), count in zip(batch, counts, strict=True):
                    if count == 0:
                        if on_absent is None:
                            self.stats.frames_dropped["absent_peer"] += 1
                        else:
                            _call(on_absent)

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
                    if trio.current_time() >= next_renewal:
                        await self._renew()
                        next_renewal = trio.current_time() + renew_every
            except REDIS_ERRORS as error:
                self._fail(_describe(error))
                return

    async def _release_and_unlisten(self) -> None:
        releases, self._releases = self._releases, []
        # An address listened to again since unlisten() stays subscribed.
        names = [name for name in self._unlistens if name not in self._listeners]
        self._unlistens.clear()
        if names and self._pubsub is not None:
            await self._pubsub.unsubscribe(*names)
            _forget_waiters(self._pubsub, names)
        client = self._client
        if releases and client is not None:
            async with client.pipeline(transaction=False) as pipeline:
                for name, token in releases:
                    pipeline.eval(_RELEASE, keys=[name], args=[token])

    async def _renew(self) -> None:
        """Renew every lease; call ``on_lost`` for those another process holds now."""
        client = self._client
        leases = list(self._leases.items())
        if client is None:
            return
        for start in range(0, len(leases), RENEW_CHUNK):
            chunk = leases[start : start + RENEW_CHUNK]
            lost = await client.eval(
                _RENEW,
                keys=[name for name, _ in chunk],
                args=[lease.value for _, lease in chunk] + [self._lease_ms],
            )
            for index in lost if isinstance(lost, list) else ():
                name, lease = chunk[int(index) - 1]
                if self._leases.get(name) is lease:
                    del self._leases[name]
                    _call(lease.on_lost)


def _call(callback: Callable[..., None], *args: object) -> None:
    """Run a handler's callback for the backplane's task: a failure is a bug in
    that callback, logged, and must not end the backplane (nor the server)."""
    try:
        callback(*args)
    except Exception:  # a bug in the callback: logged; trio.Cancelled is not an Exception
        log.exception("backplane callback %r failed", callback)


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
