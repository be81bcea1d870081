"""Tests and checks: ``nox`` runs them all; ``nox -s tests-3.13`` runs one session.

Default sessions: tests on Python 3.11 and 3.13 (pip resolves quart-trio 0.12 with
Quart 0.22 on 3.11 and quart-trio 0.13 with Quart 0.23 on 3.13), ruff (lint and
format check), mypy (strict) on ``src/`` with the import layers (import-linter),
scaleout: several duorelay processes on one real redis-server (``tests/scaleout``),
postgres: the tests marked ``postgres`` (the store's, on a throwaway PostgreSQL
cluster; the tests sessions run them on SQLite only), and e2e: the browser tests
in ``tests/e2e`` (Playwright driving Debian's Chromium at /usr/bin/chromium
against the real server).
"""

import glob
import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "scaleout", "postgres", "lint", "typecheck", "e2e"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.13"]
# Playwright's own browser download is not used (nor reachable): the e2e tests
# launch this Chromium, Debian's package `chromium`.
CHROMIUM = os.environ.get("DUORELAY_E2E_CHROMIUM", "/usr/bin/chromium")
# Debian's package `postgresql` puts initdb, pg_ctl and postgres in
# /usr/lib/postgresql/VERSION/bin (not on PATH); tests/postgres.py looks there too.
POSTGRES_BINDIRS = os.environ.get("DUORELAY_POSTGRES_BINDIR", "/usr/lib/postgresql/*/bin")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against a real Hypercorn server (browser tests: see e2e).

    The store's tests run on SQLite here; their PostgreSQL cases (marker
    ``postgres``) are deselected: see the postgres session."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run(
        "pytest",
        "--ignore=tests/e2e",
        "--ignore=tests/scaleout",
        "-m",
        "not postgres",
        *session.posargs,
    )


@nox.session(python=PYTHONS)
def scaleout(session: nox.Session) -> None:
    """Rooms across processes: duorelay processes sharing a real Redis (tests/scaleout).

    Needs ``redis-server`` on PATH (``apt-get install redis-server``; .ci/run does
    it). Without it: fails in CI ($CI set), skips elsewhere.
    """
    if shutil.which("redis-server") is None:
        msg = "scaleout: redis-server not found. Install Debian's package redis-server"
        if _ci():
            session.error(msg)
        session.skip(msg)
    session.install("-e", ".[test]")
    session.run("pytest", "tests/scaleout", *session.posargs)


@nox.session(python=PYTHONS)
def postgres(session: nox.Session) -> None:
    """The tests marked ``postgres``: the store on PostgreSQL (psycopg), migrations
    included, on a throwaway cluster that tests/postgres.py starts on a free port
    and removes after.

    Needs Debian's PostgreSQL server binaries in /usr/lib/postgresql/*/bin
    (``apt-get install postgresql``; .ci/run does it) or in
    $DUORELAY_POSTGRES_BINDIR; under root, also the ``postgres`` user that package
    creates (PostgreSQL refuses to run as root). Without them: fails in CI ($CI
    set), skips elsewhere.
    """
    if not any(Path(path, "initdb").is_file() for path in glob.glob(POSTGRES_BINDIRS)):
        msg = (
            f"postgres: no PostgreSQL server binaries in {POSTGRES_BINDIRS}. Install "
            "Debian's package postgresql (apt-get install postgresql)"
        )
        if _ci():
            session.error(msg)
        session.skip(msg)
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--ignore=tests/e2e",
        "--ignore=tests/scaleout",
        "-m",
        "postgres",
        *session.posargs,
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/, and the import layers of ARCHITECTURE.md (import-linter:
    the contract in pyproject.toml; imports point down only, no circles)."""
    session.install("-e", ".[test]", "mypy>=1.13", "import-linter>=2.1")
    session.run("mypy", "src")
    session.run("lint-imports")


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@nox.session(python="3.11")
def e2e(session: nox.Session) -> None:
    """Browser tests: two Chromium players against ``python -m duorelay``, plus axe-core.

    Needs Chromium at /usr/bin/chromium (``apt-get install chromium``; .ci/run does
    it) or at $DUORELAY_E2E_CHROMIUM. Without it: fails in CI ($CI set), skips
    elsewhere. Screenshots and the server log go to test-artifacts/e2e/.
    """
    if not Path(CHROMIUM).is_file():
        msg = (
            f"e2e: no Chromium at {CHROMIUM}. Install Debian's package "
            "(apt-get install chromium) or set DUORELAY_E2E_CHROMIUM"
        )
        if _ci():
            session.error(msg)
        session.skip(msg)
    session.install(
        "-e",
        ".",
        "pytest>=8.3",
        "pytest-trio>=0.8",  # pyproject.toml sets trio_mode for every pytest run
        "pytest-timeout>=2.3",  # and a per-test timeout
        "playwright>=1.45",
        "axe-playwright-python>=0.1.4",  # bundles axe-core's axe.min.js
    )
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run(
        "pytest",
        "tests/e2e",
        # The e2e tests need none of tests/conftest.py (nor its test-only imports).
        "--confcutdir=tests/e2e",
        *session.posargs,
        env={"DUORELAY_E2E_CHROMIUM": CHROMIUM},
    )


@nox.session(python="3.11", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (bench/run.py): duorelay against a raw-ASGI Hypercorn relay and a
    python-websockets relay. Not in the default run. ``nox -s bench -- --quick`` is
    the short version (under 2 minutes); the full run rewrites the results in
    docs/benchmarks.md. py-spy needs ptrace (root, or CAP_SYS_PTRACE).
    ``nox -s bench -- --scaleout [--quick]`` runs bench/scaleout.py instead: the
    cost of a frame between two processes through Redis (needs redis-server).
    ``nox -s bench -- --santorini [--quick]`` runs bench/santorini.py instead: the
    Santorini referee's CPU per move (store and --no-store) and 100 connected bots.
    ``nox -s bench -- --uttt [--quick]`` runs bench/uttt.py instead: 1,000 UTTT
    matches of paced bots (moves/s, move-to-update latency, CPU and database time
    per move). ``nox -s bench -- --xo [--quick] [--postgres auto|none|URL]`` runs
    bench/xo.py instead: XO logins/s and 500 concurrent games, on SQLite and on
    PostgreSQL (a throwaway cluster by default)."""
    session.install(
        "-e",
        ".",
        "picows>=2.0",
        "uvloop>=0.21",
        "websockets>=14",
        "psutil>=6.0",
        "py-spy>=0.4",
        "trio-websocket>=0.12",  # the UTTT and XO bots
        "httpx>=0.27",  # the XO bots' HTTP client
    )
    args = list(session.posargs)
    if "--scaleout" in args:
        # bench/scaleout.py: cross-process frames through Redis (needs redis-server)
        args.remove("--scaleout")
        session.run("python", "bench/scaleout.py", *args)
    elif "--santorini" in args:
        # bench/santorini.py: the Santorini referee under instant bots
        args.remove("--santorini")
        session.run("python", "bench/santorini.py", *args)
    elif "--uttt" in args:
        # bench/uttt.py: the UTTT referee under 1,000 matches of paced bots
        args.remove("--uttt")
        session.run("python", "bench/uttt.py", *args)
    elif "--xo" in args:
        # bench/xo.py: XO logins and 500 concurrent games, SQLite and PostgreSQL
        args.remove("--xo")
        session.run("python", "bench/xo.py", *args)
    else:
        session.run("python", "bench/run.py", *args)
