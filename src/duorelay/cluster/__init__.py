"""The backplane over Redis, and WMBP rooms across processes (docs/architecture.md, "Layers").

- :mod:`duorelay.cluster.redis`: :class:`~duorelay.cluster.redis.RedisBackplane`,
  the connection to Redis and the task tree that serves it (subscriptions,
  delivery, maintenance);
- :mod:`duorelay.cluster.leases`: cluster-wide ownership of keys (seats, room codes);
- :mod:`duorelay.cluster.publisher`: the bounded publish queue and its task;
- :mod:`duorelay.cluster.wmbp`: WMBP clients and hosts on different processes.

The interface the relay is given is :class:`duorelay.core.backplane.Backplane`;
nothing below ``cluster/`` imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from duorelay.observability import Stats

log = logging.getLogger("duorelay")


def run_callback(stats: Stats, callback: Callable[..., None], *args: object) -> None:
    """Run a handler's callback for a backplane task: a failure is a bug in
    that callback, logged with its traceback and counted
    (``duorelay_backplane_errors_total{kind="callback"}``), and must not end
    the backplane (nor the server)."""
    try:
        callback(*args)
    except Exception:  # a bug in the callback: logged; trio.Cancelled is not an Exception
        stats.backplane_errors["callback"] += 1
        log.exception("backplane callback %r failed", callback)
