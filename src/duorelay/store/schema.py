"""The tables (SQLAlchemy Core). The event log is the truth.

- ``matches``: one row per match of a server-authoritative game (a Santorini
  game of a tournament series, later UTTT and XO matches). ``id`` is 32
  lowercase hex characters; ``game`` names the rules module (``santorini``);
  ``players`` the players' names in seat order; ``status`` ``live`` or
  ``over``; ``result`` what the referee decided, as JSON (``None`` while live).
- ``match_events``: the event log of each match, ``(match_id, seq)`` unique:
  ``seq`` counts from 1 with no gaps, so of two writers of the same sequence
  number only one succeeds (the database decides which move counts). ``kind``
  names the event (``placement``, ``action``, ``outcome``...); ``data`` is its
  JSON body; ``at`` when it was stored (UTC).
- ``tournaments``: one row per tournament: the registered players, the
  schedule, and the results once it is over.

Migrations that create these tables: ``migrations/versions``. Changing a
table here means adding a migration (``tests/test_store.py`` checks that the
migrated database matches this module).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tournaments = Table(
    "tournaments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("game", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("players", JSON, nullable=False),
    Column("schedule", JSON, nullable=False),
    Column("results", JSON, nullable=True),
)

matches = Table(
    "matches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("game", String(32), nullable=False),
    Column("tournament_id", ForeignKey("tournaments.id"), nullable=True),
    Column("players", JSON, nullable=False),
    Column("status", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("result", JSON, nullable=True),
    Index("ix_matches_tournament_id", "tournament_id"),
)

match_events = Table(
    "match_events",
    metadata,
    Column("match_id", ForeignKey("matches.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
)
