"""The database: tables, the gateway that runs queries from Trio, migrations.

SQLAlchemy Core 2 over a sync driver (SQLite by default, PostgreSQL through
psycopg), called from Trio through one gateway, :class:`~duorelay.store.gateway.Store`:
one ``await store.run(fn)`` is one transaction in a worker thread, and never
a transaction spanning awaits of other things (docs/architecture.md, "The
store"). The schema is :mod:`duorelay.store.schema`; changes to it are Alembic
migrations (``migrations/versions``), applied by :meth:`Store.migrate` at start.
"""
