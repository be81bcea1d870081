"""Leases: exclusive ownership of a key across the cluster, kept alive by renewal.

A lease is a Redis key holding its owner's *token* (this process's node id, a
counter, then the lease's data) for ``lease`` seconds; its owner renews it
every third of that, so whatever a dead process held is free again within one
lease time. Every write is a Lua script, so checking the holder and writing
are one step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import coredis

from duorelay.cluster import run_callback
from duorelay.observability import Stats

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

Command = Callable[[Callable[[coredis.Redis[bytes]], Awaitable[object]]], Awaitable[object]]
"""How a lease runs one Redis command for a handler (with the backplane's
timeout and failure handling)."""


@dataclass(slots=True)
class _Lease:
    value: bytes
    on_lost: Callable[[], None]


class Leases:
    """The leases this process holds, by Redis key name.

    ``node`` is this process's id (bytes), the start of each token; ``lease``
    the lease time in seconds. :meth:`acquire` and :meth:`release` are for
    handlers; :meth:`flush` and :meth:`renew` for the backplane's maintenance
    task. ``wake`` is called when a release is queued; ``stats`` counts
    ``on_lost`` callbacks that fail.
    """

    def __init__(self, node: bytes, lease: float, wake: Callable[[], None], stats: Stats) -> None:
        self._stats = stats
        self._node = node
        self._lease_ms = max(1, round(lease * 1000))
        self._tokens = (node + b":%d" % n for n in range(1, 1 << 62))
        self._held: dict[bytes, _Lease] = {}
        self._releases: list[tuple[bytes, bytes]] = []
        self._wake = wake

    async def acquire(
        self, command: Command, name: bytes, on_lost: Callable[[], None], data: bytes
    ) -> bool:
        """Take key ``name`` for this process with ``data``; False if another holds it.

        ``on_lost`` is called if the key is later found held by another process.
        Raises what ``command`` raises; cancelled or failed after Redis may
        have set the key, the key is queued for release.
        """
        value = next(self._tokens) + b" " + data
        try:
            result = await command(
                lambda client: client.eval(
                    _ACQUIRE, keys=[name], args=[value, self._node + b":", self._lease_ms]
                )
            )
        except BaseException:  # cleaned up, then re-raised (trio.Cancelled included)
            # The script deletes the key only if it still holds this value.
            self._releases.append((name, value))
            self._wake()
            raise
        if result != 1:
            return False
        self._held[name] = _Lease(value, on_lost)
        return True

    def release(self, name: bytes) -> None:
        """Give key ``name`` up: at once here, in Redis at the next :meth:`flush`.

        Synchronous and idempotent. If Redis is out of reach, the key expires
        with its lease.
        """
        lease = self._held.pop(name, None)
        if lease is not None:
            self._releases.append((name, lease.value))
            self._wake()

    async def flush(self, client: coredis.Redis[bytes]) -> None:
        """Delete the released keys still holding this process's tokens."""
        releases, self._releases = self._releases, []
        if releases:
            async with client.pipeline(transaction=False) as pipeline:
                for name, token in releases:
                    pipeline.eval(_RELEASE, keys=[name], args=[token])

    async def renew(self, client: coredis.Redis[bytes]) -> None:
        """Renew every lease (re-creating keys a restarted Redis lost); call
        ``on_lost`` for those another process holds now."""
        leases = list(self._held.items())
        for start in range(0, len(leases), RENEW_CHUNK):
            chunk = leases[start : start + RENEW_CHUNK]
            lost = await client.eval(
                _RENEW,
                keys=[name for name, _ in chunk],
                args=[lease.value for _, lease in chunk] + [self._lease_ms],
            )
            for index in lost if isinstance(lost, list) else ():
                name, lease = chunk[int(index) - 1]
                if self._held.get(name) is lease:
                    del self._held[name]
                    run_callback(self._stats, lease.on_lost)
