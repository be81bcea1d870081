"""``python -m duorelay santorini`` whose event log does not wait at a game's end.

An experiment for docs/benchmarks.md ("Santorini referee"), applied from outside
(monkeypatching ``Recorder._write``): ``Recorder.game_over`` queues the outcome
without waiting for its commit, so the writer commits at most every 32 writes
or 50 ms instead of once per game. ``bench/santorini.py --experiments`` runs
it beside the default, to weigh the wait at each game's end.
"""

from __future__ import annotations

import sys
from typing import Any

from duorelay.cli import main
from duorelay.referee import record

_write = record.Recorder._write


async def _write_without_game_wait(self: record.Recorder, item: Any, *, wait: bool) -> object:
    return await _write(self, item, wait=wait and item.finish is None)


record.Recorder._write = _write_without_game_wait  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(["santorini", *sys.argv[1:]]))
