"""Limits, sans-IO: the caller passes the clock.

:class:`TokenBucket` limits one connection's frames (``MAX_RATE``/``MAX_BURST``);
:class:`Buckets` holds one bucket per key (a client address: the failed-lookup
limit of :mod:`duorelay.app`), in a map bounded in size.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """A token bucket: on average ``rate`` events per second, ``burst`` at once.

    Starts full. :meth:`allow` takes one token if there is one; :meth:`take`
    takes the next one, now or later, and says when. Time is a monotonic
    reading in seconds passed by the caller (``trio.current_time()``).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def allow(self, now: float, cost: int = 1) -> bool:
        """Whether one more event is allowed at ``now`` (the bucket holds a
        token); if so, it is counted: ``cost`` tokens are taken (0: only ask)."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= cost
        return True

    def take(self, now: float) -> float:
        """Count one more event and return when it may happen: ``now`` if a
        token is there, else the time the next token is earned (the caller
        waits until then; the token is spent at that time)."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return now
        ready = now + (1 - self._tokens) / self.rate
        self._tokens = 0.0
        self._last = ready
        return ready

    def full(self, now: float) -> bool:
        """Whether the bucket is full again at ``now``: then it is no different
        from a new one, and may be forgotten."""
        return self._tokens + (now - self._last) * self.rate >= self.burst


class Buckets:
    """Token buckets by key, at most ``capacity`` of them (memory stays bounded
    however many keys there are).

    A key's bucket is created full at its first :meth:`charge`. Buckets are
    kept least recently charged first; after each charge, the oldest ones that
    are full again are forgotten (a full bucket is the same as none), and, over
    ``capacity``, the oldest one even if it is not full (that key starts over
    with a full bucket: a client with more than ``capacity`` addresses in use
    at once can outrun the limit).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()  # oldest charge first

    def __len__(self) -> int:
        return len(self._buckets)

    def charge(self, key: str, rate: float, burst: int, now: float, cost: int = 1) -> bool:
        """Whether bucket ``key`` (``rate`` tokens per second, ``burst`` at most)
        holds a token at ``now`` (seconds, monotonic); if so, ``cost`` tokens
        (0 or 1) are taken."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(rate, burst, now)
        else:
            buckets.move_to_end(key)
        allowed = bucket.allow(now, cost)
        while buckets:
            oldest = next(iter(buckets.values()))
            if len(buckets) <= self.capacity and not oldest.full(now):
                break
            buckets.popitem(last=False)
        return allowed
