"""Alembic environment of the run store.

prompthone runs it in-process (`prompthone.store.migrate.upgrade_to_head`) on a connection that is already
inside a locked transaction, passed as `config.attributes["connection"]`; Alembic then joins that transaction
instead of committing on its own. A developer writing a new revision builds the config in code, e.g.
`alembic.command.revision(prompthone.store.migrate.alembic_config(url="sqlite:///dev.sqlite"), "msg",
autogenerate=True)` against a database at head. Revisions must not import `schema.py` (it moves on; a
revision describes one fixed point), and on SQLite they alter tables in batch mode (`render_as_batch`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from prompthone.store.schema import VERSION_TABLE, Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():  # `alembic upgrade --sql`: print the DDL for a DBA instead of running it
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata,
                          version_table=VERSION_TABLE, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: build the config with migrate.alembic_config()")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


_main()
