"""Bringing a store's schema to this prompthone's head revision with Alembic, safely under concurrent openers.

Every process that opens a store runs this. The check runs first without a lock (the usual case: already at
head, nothing to do); otherwise the upgrade runs in one transaction holding the database's write lock
(SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock), re-checking the revision under the lock, so that
two workers opening an empty database at once create the schema once. A revision this code does not know
was written by a newer prompthone: we refuse and change nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from prompthone.errors import StoreError
from prompthone.store.schema import VERSION_TABLE, Base

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: any fixed 64-bit number; PostgreSQL advisory locks are keyed by it
_PG_LOCK_KEY = 0x70726F6D70746872


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config built in code (no alembic.ini): the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade_to_head(engine: Engine, display: str) -> None:
    """Initialise an empty database, upgrade an older one; raise StoreError for a newer one."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.connect() as conn:
        found = current_revision(conn)
        if found == head:
            return
        _check(conn, found, known, head, display)
        conn.rollback()
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations on SQLite copy and drop tables: with foreign keys on, the drop would cascade.
            _sqlite_pragma(conn, "foreign_keys = OFF")
        try:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if not sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                found = current_revision(conn)
                if found != head:
                    _check(conn, found, known, head, display)
                    logging.getLogger(__name__).info("store %s: schema %s -> %s", display, found, head)
                    command.upgrade(alembic_config(conn), "head")
        finally:
            if sqlite:
                _sqlite_pragma(conn, "foreign_keys = ON")


def _check(conn: Connection, found: str | None, known: set[str], head: str | None, display: str) -> None:
    if found is not None and found not in known:
        raise StoreError(f"store {display} has schema revision {found}, newer than this prompthone "
                         f"(knows up to {head}): upgrade prompthone")
    if found is None:
        ours = sorted(set(inspect(conn).get_table_names()) & set(Base.metadata.tables))
        if ours:
            raise StoreError(f"store {display} has run-store tables ({', '.join(ours)}) but no schema revision "
                             f"table {VERSION_TABLE}: it was not made by prompthone; use another database")


def _sqlite_pragma(conn: Connection, pragma: str) -> None:
    """Run a PRAGMA outside any transaction (inside one, `foreign_keys` is silently ignored)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA {pragma}")
