"""The store's databases for tests: a SQLite file, or a throwaway PostgreSQL cluster.

A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``). Its fixtures:

- ``database_url``: parametrized, ``sqlite`` (a file in the test's folder) and
  ``postgresql`` (a new database of the cluster below, dropped after the test),
  so a test using it runs on both. The ``postgresql`` case carries the
  ``postgres`` marker: ``nox -s tests`` deselects it (``-m "not postgres"``),
  ``nox -s postgres`` runs only it (``-m postgres``).
- ``postgres_url``: a new database of the cluster below, for PostgreSQL-only
  tests (mark them ``postgres``).
- ``postgres_cluster``: one PostgreSQL server for the whole run, from Debian's
  package ``postgresql`` (``/usr/lib/postgresql/VERSION/bin``, the newest
  version; ``$DUORELAY_POSTGRES_BINDIR`` names another folder). ``initdb``
  makes a cluster in a new temporary folder, ``pg_ctl start -w`` starts it on a
  free port of 127.0.0.1 (its unix socket in that folder, never in
  ``/var/run/postgresql``) and returns once it accepts connections; after the
  run it is stopped and the folder removed. PostgreSQL refuses to run as root:
  under root, the cluster belongs to the ``postgres`` user that Debian's package
  creates and its commands run as that user. Without the binaries (or that
  user) the tests that need it fail in CI (``$CI`` set) and are skipped
  elsewhere, with a message saying what to install.

The cluster's time zone is not UTC on purpose (:data:`SERVER_TIME_ZONE`):
``timestamp with time zone`` values come back in the session's zone, so code
that assumes UTC shows up here. Durability is off (``fsync``), which is fine
for a cluster that is removed after the run.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
from psycopg import sql

DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
"""Debian's package puts each major version's binaries in ``VERSION/bin`` here."""
BINDIR_VARIABLE = "DUORELAY_POSTGRES_BINDIR"
TOOLS = ("initdb", "pg_ctl", "postgres")
RUN_AS = "postgres"
"""The user the cluster runs as when the tests run as root (Debian's package makes it)."""
SUPERUSER = "duorelay"
"""The cluster's superuser role; connections from 127.0.0.1 need no password."""
SERVER_TIME_ZONE = "Asia/Kathmandu"
"""UTC+05:45: a time a test expects in UTC cannot match by accident."""
START_TIMEOUT = 60
"""Seconds ``pg_ctl`` waits for the server to accept connections (or to stop)."""
INSTALL = "Install Debian's package postgresql (apt-get install postgresql)"


class Missing(Exception):
    """PostgreSQL cannot be run here; the message says why."""


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _version(bindir: Path) -> tuple[int, ...]:
    name = bindir.parent.name
    return tuple(int(part) for part in name.split(".")) if name.replace(".", "").isdigit() else ()


def find_bindir() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``; :class:`Missing`."""
    given = os.environ.get(BINDIR_VARIABLE)
    if given:
        candidates = [Path(given)]
    else:
        candidates = sorted(DEBIAN_BINDIRS.glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in TOOLS):
            return bindir
    where = given if given else f"{DEBIAN_BINDIRS}/*/bin"
    raise Missing(f"no PostgreSQL server binaries ({', '.join(TOOLS)}) in {where}. {INSTALL}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    """A running throwaway cluster: :meth:`start`, :meth:`create_database`, :meth:`stop`."""

    bindir: Path
    folder: Path
    port: int = 0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def _account(self) -> dict[str, Any]:
        """``subprocess`` arguments running a command as :data:`RUN_AS` under root."""
        if os.geteuid() != 0:
            return {}
        try:
            user = pwd.getpwnam(RUN_AS)
        except KeyError:
            raise Missing(
                f"the tests run as root, which PostgreSQL refuses, and there is no "
                f"{RUN_AS!r} user to run it as. {INSTALL} (it creates that user)"
            ) from None
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            env={**os.environ, "LC_ALL": "C"},
            timeout=START_TIMEOUT + 30,
            check=False,
            **self._account(),
        )

    def start(self) -> None:
        """``initdb``, then start the server on a free port; returns once it accepts
        connections. Raises :class:`Missing` or ``RuntimeError`` (with the log)."""
        account = self._account()
        if account:
            os.chown(self.folder, account["user"], account["group"])
        made = self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if made.returncode:
            raise RuntimeError(f"initdb failed:\n{made.stdout}{made.stderr}")
        # A port free a moment ago may be taken by the time the server binds it:
        # then the start fails, and another port is tried.
        for _attempt in range(3):
            self.port = _free_port()
            options = [
                f"-p {self.port}",
                "-h 127.0.0.1",
                f"-k {shlex.quote(str(self.folder))}",
                f"-c timezone={SERVER_TIME_ZONE}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
            started = self._run(
                "pg_ctl",
                "start",
                "--pgdata",
                str(self.data),
                "--log",
                str(self.log),
                "--wait",
                "--timeout",
                str(START_TIMEOUT),
                "-o",
                " ".join(options),
            )
            if started.returncode == 0:
                break
        else:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{started.stdout}{started.stderr}{log}")
        # pg_ctl --wait returned once the server was ready; one query proves it.
        with self.connect() as connection:
            connection.execute("SELECT 1")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """A psycopg connection (autocommit) to ``dbname`` as the superuser."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=START_TIMEOUT,
        )

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname`` (``DUORELAY_DATABASE_URL``)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; its URL."""
        with self.connect() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection still open to it."""
        with self.connect() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Stop the server (immediate shutdown: nothing is kept) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                stopped = self._run(
                    "pg_ctl",
                    "stop",
                    "--pgdata",
                    str(self.data),
                    "--mode",
                    "immediate",
                    "--wait",
                    "--timeout",
                    str(START_TIMEOUT),
                )
                if stopped.returncode and (self.data / "postmaster.pid").exists():
                    # The server this fixture started, by the pid it wrote.
                    pid = int((self.data / "postmaster.pid").read_text().split()[0])
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server for the whole run, removed after (module docstring)."""
    try:
        cluster = PostgresCluster(find_bindir(), Path(tempfile.mkdtemp(prefix="duorelay-pg-")))
    except Missing as missing:
        _unavailable(str(missing))
    try:
        cluster.start()
    except Missing as missing:
        cluster.stop()
        _unavailable(str(missing))
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def _unavailable(message: str) -> NoReturn:
    message = f"PostgreSQL tests: {message}"
    if _ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


_database_numbers = itertools.count(1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database, for ``Store``: on SQLite (a file of the test's
    folder) and on PostgreSQL (:func:`postgres_url`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'duorelay.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new empty database of :func:`postgres_cluster`, dropped after
    the test (a test using it directly should be marked ``postgres``)."""
    name = f"test_{next(_database_numbers)}"
    url = postgres_cluster.create_database(name)
    try:
        yield url
    finally:
        postgres_cluster.drop_database(name)
