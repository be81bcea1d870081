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
- ``accounts``: one per player name, shared by every service (a player signed
  up through the XO API logs into the UTTT server with the same name and
  password). ``name`` is lowercase (``^[a-z0-9_-]{3,16}$``); ``uuid`` is the
  public id (32 hex characters; the XO API shows it as a UUID);
  ``password_hash`` an Argon2id hash, ``None`` for a temporary account (a
  UTTT login with an empty password: no rating, unranked matches).
- ``ratings``: one Elo rating per account and game (``game`` ``uttt``),
  created with the account's first rated result or login; rank queries use the
  ``(game, rating)`` index.
- ``login_sessions``: the UTTT server's session ids (32 hex characters), the
  account they log in, and when they were last used (they expire 20 days
  unused; a temporary account's 1 hour after its last connection ends).
- ``friends``: who follows whom (one-way: ``account_id`` lists ``friend_id``).
- ``match_players``: the seats of a match (``seat`` 0 moves first, 1...), so a
  player's matches are one indexed query; ``seen`` is whether that player was
  shown the match's result (UTTT sends a finished match once more).
- ``matches.ranked`` (UTTT: both players have accounts) and ``matches.moved_at``
  (the last move, for revoke time); ``matches.status`` is also ``waiting`` for
  an XO game without an opponent.
- ``secrets``: values the service generates once and keeps, such as the JWT
  signing key when ``DUORELAY_JWT_SECRET`` is unset.

Migrations that create these tables: ``migrations/versions``. Changing a
table here means adding a migration (``tests/test_store.py`` checks that the
migrated database matches this module).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
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
    Column("ranked", Boolean, nullable=True),
    Column("moved_at", DateTime(timezone=True), nullable=True),
    Index("ix_matches_tournament_id", "tournament_id"),
    Index("ix_matches_game_status", "game", "status"),
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

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("uuid", String(32), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

ratings = Table(
    "ratings",
    metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("game", String(32), primary_key=True),
    Column("rating", Integer, nullable=False),
    Index("ix_ratings_game_rating", "game", "rating"),
)

login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=False),
    Index("ix_login_sessions_account_id", "account_id"),
)

friends = Table(
    "friends",
    metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("friend_id", ForeignKey("accounts.id"), primary_key=True),
)

match_players = Table(
    "match_players",
    metadata,
    Column("match_id", ForeignKey("matches.id"), primary_key=True),
    Column("seat", Integer, primary_key=True, autoincrement=False),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("seen", Boolean, nullable=False),
    Index("ix_match_players_account_id", "account_id"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
