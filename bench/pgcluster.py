"""A throwaway PostgreSQL cluster for ``bench/xo.py --postgres auto``.

The minimal start and stop of ``tests/postgres.py`` (which is a pytest plugin),
with one difference: durability stays at PostgreSQL's defaults (``fsync=on``,
``synchronous_commit=on``, ``full_page_writes=on``), so that a commit waits for
the disk as SQLite's does; the test cluster turns it off. Debian's binaries
(``/usr/lib/postgresql/VERSION/bin``, the newest version, or
``$DUORELAY_POSTGRES_BINDIR``); under root the cluster runs as the ``postgres``
user (PostgreSQL refuses root). Started on a free port of 127.0.0.1, its unix
socket in its own temporary folder; stopped (immediate) and removed after.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SUPERUSER = "duorelay"
RUN_AS = "postgres"


class Unavailable(Exception):
    """PostgreSQL cannot be run here; the message says why."""


def find_bindir() -> Path:
    given = os.environ.get("DUORELAY_POSTGRES_BINDIR")
    candidates = (
        [Path(given)]
        if given
        else sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise Unavailable("no PostgreSQL server binaries (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="duorelay-bench-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self.account: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise Unavailable("running as root and there is no 'postgres' user") from None
            self.account = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.folder, user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            env={**os.environ, "LC_ALL": "C"},
            timeout=120,
            check=False,
            **self.account,
        )

    def start(self) -> None:
        made = self._run(
            "initdb", "--pgdata", str(self.data), "--username", SUPERUSER, "--auth", "trust",
            "--encoding", "UTF8", "--no-locale",
        )  # fmt: skip
        if made.returncode:
            raise RuntimeError(f"initdb failed:\n{made.stdout}{made.stderr}")
        self.port = _free_port()
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c max_connections=200"
        started = self._run(
            "pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log), "--wait",
            "--timeout", "60", "-o", options,
        )  # fmt: skip
        if started.returncode:
            raise RuntimeError(f"PostgreSQL did not start:\n{started.stdout}{started.stderr}")

    def version(self) -> str:
        with self.connect() as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True
        )

    def create_database(self, name: str) -> str:
        with self.connect() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """A new database ``name`` on the server of ``url`` (a SQLAlchemy
    ``postgresql+psycopg://`` URL whose user may create databases); its URL."""
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"
