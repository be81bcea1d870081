"""The backplane interface: what rooms span processes with (docs/architecture.md, "Layers").

A process keeps its rooms in its own registry; the backplane is the layer
under it that tells processes apart. The relay's handlers are *given* a
backplane and use only this interface, so ``relay/`` never imports
``cluster/``, where the Redis implementation lives
(:class:`duorelay.cluster.redis.RedisBackplane`, ``DUORELAY_REDIS_URL``).
:class:`Backplane` itself is the default: this process is the whole cluster.

Two primitives are all a protocol handler needs:

- ``await acquire(key, on_lost, data)`` / ``release(key)``: exclusive
  ownership of ``key`` across the cluster (a seat: docs/protocols.md section 1,
  rule 3); ``await lookup(key)`` reads its ``data`` (a WMBP room's name).
- ``await listen(address, deliver, on_lost, on_back)`` / ``unlisten(address)``:
  ``deliver`` is called, synchronously, for each message
  (:mod:`duorelay.protocols.cluster`) a process sends to ``address`` with
  ``send`` / ``send_nowait(address, message, sender, on_absent)``, once the
  subscription is confirmed.

A join first calls ``await wait_available()`` under
``trio.move_on_after(DUORELAY_BACKPLANE_WAIT)``: while the backplane is
connecting (just after start) or reconnecting, the join waits for it that long
at most; if it is still out of reach, ``listen`` or ``acquire`` then raises
:class:`BackplaneUnavailable` and the join is refused with 1013.

One more serves the app's abuse limits: ``await charge(key, rate, burst,
cost)`` takes a token from a token bucket shared by every process (the
failed-lookup limit per client address, docs/protocols.md section 2).

``release`` and ``unlisten`` are synchronous (they only queue the work), so a
session calls them in ``finally`` blocks even while being cancelled
(docs/architecture.md, invariants 6 and 7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from duorelay.core.limits import Buckets
from duorelay.protocols.cluster import ClusterMessage

MAX_BUCKETS = 10_000
"""Token buckets :meth:`Backplane.charge` keeps in one process (about 250 bytes
each, so about 2.5 MB at most): beyond it, the least recently charged one
is forgotten."""

UNAVAILABLE = "backplane unavailable: try again later"
"""The close reason sent with 1013 when the backplane is out of reach."""


class BackplaneUnavailable(Exception):
    """The backplane cannot be reached now (close code 1013, "try again later")."""


class Sender(Protocol):
    """Who sent a message: closed with 1013 if the message cannot be published."""

    def close(self, code: int, reason: str, *, flush: bool = False) -> None: ...


Deliver = Callable[[bool, ClusterMessage], None]
"""``deliver(from_here, message)``: a message for an address.

``from_here`` is True when this process sent it. It must not await: it runs
in the one task that delivers the messages of every address.
"""


class Backplane:
    """The in-process backplane: this process is the whole cluster (the default).

    Every method keeps the interface of the Redis backplane: leases are
    always granted (the registry already refused a seat held here), and there
    is nobody to send to, so ``send`` is never called (``shared`` is False).
    """

    shared = False
    """Whether other processes share the rooms (False: never send or listen)."""

    node = "local"
    """This process's id in the cluster (in addresses that must be unique)."""

    def __init__(self) -> None:
        self._buckets = Buckets(MAX_BUCKETS)

    @property
    def available(self) -> bool:
        """Whether the backplane can be used now."""
        return True

    @property
    def fault(self) -> str:
        """A bug in the backplane's own tasks, recent and maybe recurring: ``/healthz``
        then says ``"status": "degraded"``. Empty when there is none (always in-process)."""
        return ""

    def describe(self) -> dict[str, str | bool]:
        """For ``/healthz``: ``{"kind", "available"}``."""
        return {"kind": "in-process", "available": True}

    async def wait_available(self) -> None:
        """Return once the backplane is available; in-process, at once.

        For a join arriving while the backplane connects or reconnects. It
        waits without bound: the caller bounds it with a cancel scope
        (``trio.move_on_after(settings.backplane_wait)``), then finds it still
        unavailable in ``listen`` or ``acquire``. Cancelling it leaves nothing
        behind.
        """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to run in-process."""
        task_status.started()

    async def acquire(self, key: str, on_lost: Callable[[], None], data: bytes = b"") -> bool:
        """Take ``key`` for this process; always granted in-process."""
        return True

    async def lookup(self, key: str) -> bytes | None:
        """The ``data`` of ``key`` held by another process: never, in-process."""
        return None

    def release(self, key: str) -> None:
        """Give ``key`` up (nothing to do in-process)."""

    async def charge(self, key: str, rate: float, burst: int, cost: int = 1) -> bool:
        """Whether token bucket ``key`` holds a token now; if so, take ``cost`` (0 or 1).

        The bucket refills at ``rate`` tokens per second up to ``burst`` and
        starts full. In-process: a bucket of this process, kept while it is not
        full again, at most :data:`MAX_BUCKETS` of them
        (:class:`~duorelay.core.limits.Buckets`). Never raises.
        """
        return self._buckets.charge(key, rate, burst, trio.current_time(), cost)

    async def listen(
        self,
        address: str,
        deliver: Deliver,
        on_lost: Callable[[], None],
        on_back: Callable[[], None] | None = None,
    ) -> None:
        """Listen to ``address`` (nobody sends in-process)."""

    def unlisten(self, address: str) -> None:
        """Stop listening to ``address`` (nothing to do in-process)."""

    def send_nowait(
        self,
        address: str,
        message: ClusterMessage,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
    ) -> None:
        """Queue ``message`` for ``address``; in-process there is nobody to send to.

        A shared backplane raises :class:`BackplaneUnavailable` when it is out
        of reach or when its bound of queued control messages is reached, and
        ``trio.WouldBlock`` for a frame while its queue of frames is full.
        """
        raise RuntimeError("the in-process backplane has nobody to send to")

    async def send(
        self,
        address: str,
        message: ClusterMessage,
        sender: Sender | None = None,
        on_absent: Callable[[], None] | None = None,
    ) -> None:
        """:meth:`send_nowait`, waiting for room; in-process there is nobody to send to."""
        raise RuntimeError("the in-process backplane has nobody to send to")
