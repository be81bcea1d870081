"""``python -m duorelay santorini`` with SQLite's ``PRAGMA synchronous=NORMAL``.

An experiment for docs/benchmarks.md ("Santorini referee"), applied from outside
(monkeypatching ``duorelay.store.gateway._sqlite_pragmas``) so that it is
measured before anyone decides on it in ``src/``: ``bench/santorini.py
--experiments`` runs it. In WAL mode, NORMAL syncs the log at checkpoints, not
at every commit: a committed event survives a crash of the server process, but
the last ones may be lost if the machine loses power or the kernel crashes.
"""

from __future__ import annotations

import sys
from typing import Any

from duorelay.cli import main
from duorelay.store import gateway

_pragmas = gateway._sqlite_pragmas


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    _pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


gateway._sqlite_pragmas = _sqlite_pragmas

if __name__ == "__main__":
    sys.exit(main(["santorini", *sys.argv[1:]]))
