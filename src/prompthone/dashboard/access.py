"""Opening a run store for reading only: the dashboard never creates, migrates or writes a store.

`RunStore(url)` makes a missing SQLite file and migrates an older schema, both writes. The dashboard checks
first, on its own short-lived connection, that the store exists and is at this prompthone's schema revision, and
only then opens it (the migration step is then a read that finds nothing to do).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError

from prompthone.errors import StoreError
from prompthone.store import RunStore
from prompthone.store import engine as engines
from prompthone.store.migrate import alembic_config, current_revision


def open_readonly(store_url: str | Path) -> RunStore:
    """The store at `store_url`, opened to read; StoreError (one line, password masked) when it cannot be."""
    url = engines.parse_store_url(store_url)
    if url.is_sqlite:
        database = url.url.database or ""
        if database in ("", ":memory:"):
            raise StoreError(f"cannot open store {url.display!r}: the dashboard needs a store file or URL")
        path = Path(database)
        if path.is_dir():
            raise StoreError(f"cannot open store {url.display}: it is a directory, not a database file")
        if not path.is_file():
            raise StoreError(f"cannot open store {url.display}: no such file (runs record into "
                             "runs/prompthone.sqlite by default; pass that path or a postgresql:// URL)")
    check_revision(url)
    return RunStore(store_url)


def check_revision(url: engines.StoreURL) -> None:
    """Refuse a database that holds no run store, an older one (it would be migrated) or a newer one."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    engine = _readonly_engine(url)
    try:
        with engine.connect() as conn:
            found = current_revision(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open store {url.display}: {engines.reason(exc, url)}") from None
    finally:
        engine.dispose()
    if found == head:
        return
    if found is None:
        raise StoreError(f"store {url.display} holds no prompthone runs (no run-store schema): check the path or URL")
    if found not in known:
        raise StoreError(f"store {url.display} has schema revision {found}, newer than this prompthone "
                         f"(knows up to {head}): upgrade prompthone")
    raise StoreError(f"store {url.display} has an older schema ({found}; this prompthone writes {head}) and the "
                     "dashboard only reads: upgrade it once with `prompthone runs --store URL`")


def _readonly_engine(url: engines.StoreURL) -> Engine:
    """An engine for the check; on SQLite a `mode=ro` connection (the store's own engine turns on WAL: a write)."""
    if not url.is_sqlite:
        return engines.make_engine(url)
    uri = Path(url.url.database or "").resolve().as_uri() + "?mode=ro"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))
