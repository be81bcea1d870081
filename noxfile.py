"""Tests and checks: ``nox`` runs them all; ``nox -s tests-3.13`` runs one session.

Default sessions: tests on Python 3.11 and 3.13 (pip resolves quart-trio 0.12 with
Quart 0.22 on 3.11 and quart-trio 0.13 with Quart 0.23 on 3.13), ruff (lint and
format check) and mypy (strict) on ``src/``.
"""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against a real Hypercorn server."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.install("-e", ".[test]", "mypy>=1.13")
    session.run("mypy", "src")
