"""What an operator sees: the log format, and counters in Prometheus text format.

Logs: one line per event on stderr, as text (Hypercorn's format) or JSON
(:func:`configure_logging`); never a frame's payload.

Metrics: the hot path only adds to plain integers in :class:`Stats` (no lock, no label
lookup per frame); :class:`StatsCollector` turns them into Prometheus metric
families when ``GET /metrics`` is scraped, through prometheus-client's custom
collector interface.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter

LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"

_handler = logging.StreamHandler(sys.stderr)


def log_formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``DUORELAY_LOG_FORMAT``: ``text`` or ``json``."""
    if log_format == "json":
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    return logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)


def configure_logging(log_format: str = "text") -> None:
    """Send the ``duorelay`` logger's lines to stderr, as text or JSON.

    Text lines use Hypercorn's format; JSON lines carry the structured fields
    of each event (``conn``, ``event``, ``ns``, ``room``, ``seat``, ``code``,
    ``reason``, ``seconds``, ``frames_in``, ``frames_out``). If the operator
    configured other handlers on the ``duorelay`` logger, they are left alone.
    """
    logger = logging.getLogger("duorelay")
    if any(handler is not _handler for handler in logger.handlers):
        return
    _handler.setFormatter(log_formatter(log_format))
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@dataclass
class Stats:
    """Totals since the process started; gauges are read from the app at scrape time.

    ``frames_dropped`` counts by reason: ``absent_peer`` (nobody held the other
    seat, docs/protocols.md section 1 rule 5) and ``peer_left`` (the receiver left
    while the frame waited for room in its outbox). ``closes`` counts the close
    codes the server sent. ``backplane_errors`` counts bugs caught in the
    backplane: ``task`` (one of its tasks failed; the connection to Redis was
    dropped and made again) and ``callback`` (a handler's callback failed).
    ``backplane_waiting`` is a gauge kept by the backplane: joins waiting for
    it to connect now.
    """

    connections: int = 0
    frames_relayed: int = 0
    bytes_relayed: int = 0
    frames_dropped: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    backplane_errors: Counter[str] = field(default_factory=Counter)
    backplane_waiting: int = 0


class StatsCollector(Collector):
    """A prometheus-client collector over :class:`Stats` and two live gauges.

    ``connections``, ``rooms`` and ``backplane_available`` are called at each
    scrape: the number of live connections and rooms, and whether the
    backplane is reachable.
    """

    def __init__(
        self,
        stats: Stats,
        connections: Callable[[], int],
        rooms: Callable[[], int],
        backplane_available: Callable[[], bool],
    ) -> None:
        self._stats = stats
        self._connections = connections
        self._rooms = rooms
        self._backplane_available = backplane_available

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        yield GaugeMetricFamily(
            "duorelay_connections", "Open websocket connections.", value=self._connections()
        )
        yield GaugeMetricFamily("duorelay_rooms", "Live rooms.", value=self._rooms())
        yield GaugeMetricFamily(
            "duorelay_backplane_available",
            "1 while the backplane (Redis) is reachable, else 0; 1 in-process.",
            value=int(self._backplane_available()),
        )
        yield GaugeMetricFamily(
            "duorelay_backplane_waiting",
            "Joins waiting for the backplane (Redis) to connect.",
            value=stats.backplane_waiting,
        )
        errors = CounterMetricFamily(
            "duorelay_backplane_errors",
            "Bugs caught in the backplane, by kind: task (the Redis connection was "
            "dropped and made again) or callback (a handler's callback failed).",
            labels=["kind"],
        )
        for kind in ("task", "callback"):
            errors.add_metric([kind], stats.backplane_errors[kind])
        yield errors
        yield CounterMetricFamily(
            "duorelay_connections_accepted",
            "Websocket connections accepted.",
            value=stats.connections,
        )
        yield CounterMetricFamily(
            "duorelay_frames_relayed", "Frames delivered to a peer's outbox.", stats.frames_relayed
        )
        yield CounterMetricFamily(
            "duorelay_bytes_relayed",
            "Payload bytes of relayed frames (text: UTF-8 length).",
            stats.bytes_relayed,
        )
        dropped = CounterMetricFamily(
            "duorelay_frames_dropped", "Frames dropped, by reason.", labels=["reason"]
        )
        for reason in ("absent_peer", "peer_left"):
            dropped.add_metric([reason], stats.frames_dropped[reason])
        yield dropped
        closes = CounterMetricFamily(
            "duorelay_closes", "Close frames sent, by close code.", labels=["code"]
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric([str(code)], count)
        yield closes
