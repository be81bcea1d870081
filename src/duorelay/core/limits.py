"""Per-connection limits, sans-IO: the caller passes the clock."""

from __future__ import annotations


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

    def allow(self, now: float) -> bool:
        """Whether one more event is allowed at ``now``; if so, it is counted."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
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
