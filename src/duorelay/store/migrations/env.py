"""Alembic's environment for duorelay: migrations run on a connection the caller
gives (:meth:`duorelay.store.gateway.Store.migrate`), or on the URL in Alembic's
``sqlalchemy.url`` option when run from Alembic's own command line; either way
on a :func:`~duorelay.store.gateway.migration_connection` (SQLite: foreign keys
off while tables are rebuilt, checked after)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from duorelay.store.gateway import create_engine, migration_connection
from duorelay.store.schema import metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with migration_connection(engine) as conn:
            run(conn)
    finally:
        engine.dispose()
