"""Turning what a user typed (a path or a URL) into a SQLAlchemy engine, and into text safe to show.

A password never leaves this module unmasked: every message, log line and repr uses `StoreURL.display`.
SQLite gets WAL and a busy timeout so that several processes can write one file, and writes begin with
`BEGIN IMMEDIATE` (execution option `sqlite_begin`): a deferred transaction that later needs the write lock
fails at once with "database is locked" instead of waiting out the busy timeout.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from prompthone.errors import StoreError

#: seconds a SQLite writer waits for another process's write lock before failing
SQLITE_BUSY_TIMEOUT_S = 30
#: seconds to wait for a PostgreSQL server before calling it unreachable (unless the URL sets connect_timeout)
PG_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class StoreURL:
    """The SQLAlchemy URL to connect with, the masked text to show, and the secrets to scrub from driver messages."""

    url: URL
    display: str
    secrets: tuple[str, ...] = ()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse_store_url(target: str | Path) -> StoreURL:
    """A plain path is a SQLite file; `sqlite:///...` and `postgresql://...` are URLs (psycopg v3 for the latter)."""
    text = str(target)
    if isinstance(target, Path) or "://" not in text:
        path = Path(text).expanduser()
        return StoreURL(URL.create("sqlite", database=str(path)), str(path))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise StoreError(f"cannot parse store URL {_mask_unparsed(text)!r}: expected a path, sqlite:///FILE "
                         "or postgresql://USER:PASSWORD@HOST/DB") from None
    secrets = tuple(s for s in [url.password, *_query_secrets(url)] if isinstance(s, str) and s)
    display = _masked(url)
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise StoreError(f"store {display}: unsupported database {backend!r}; use a SQLite path or postgresql://")
    return StoreURL(url, display, secrets)


def _query_secrets(url: URL) -> list[str]:
    values: list[str] = []
    for key, value in url.query.items():
        if "password" in key.lower():
            values.extend([value] if isinstance(value, str) else list(value))
    return values


def _masked(url: URL) -> str:
    query = {k: ("***" if "password" in k.lower() else v) for k, v in url.query.items()}
    # render_as_string percent-quotes query values; "***" reads better than "%2A%2A%2A"
    return url.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _mask_unparsed(text: str) -> str:
    """Best effort for a URL SQLAlchemy cannot parse: hide everything between '://' and '@'."""
    scheme, _, rest = text.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else text


def make_engine(store_url: StoreURL) -> Engine:
    """An engine configured for concurrent writers; raises StoreError when the backend cannot even be set up."""
    url = store_url.url
    if store_url.is_sqlite:
        _check_sqlite_path(store_url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    try:
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreError(f"store {store_url.display}: the PostgreSQL driver is missing ({exc.name}): "
                         "pip install 'prompthone[postgres]'") from None


def _check_sqlite_path(store_url: StoreURL) -> None:
    """Name the usual mistakes plainly; SQLite itself only says 'unable to open database file'."""
    database = store_url.url.database
    if not database or database == ":memory:":
        return
    path = Path(database)
    if path.is_dir():
        raise StoreError(f"cannot open store {store_url.display}: it is a directory, not a database file")
    if not path.parent.is_dir():
        raise StoreError(f"cannot open store {store_url.display}: directory {path.parent} does not exist")


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # pysqlite's own transaction handling skips BEGIN before DDL; we emit BEGIN ourselves (see _sqlite_on_begin).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        _while_locked(lambda: cursor.execute("PRAGMA journal_mode = WAL"))
        # NORMAL in WAL mode: a committed write survives the process being killed (only an OS crash may lose it).
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _while_locked(statement: Callable[[], object]) -> None:
    """Run `statement`, retrying for up to the busy timeout while SQLite answers "database is locked".

    The busy timeout does not cover every lock in WAL mode: while the first connection recovers the WAL or the
    last one cleans it up, another process's first statement fails at once (sqlite.org/wal.html, "Sometimes
    Queries Return SQLITE_BUSY"). Two runs opening one store at the same moment hit exactly that.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def reason(exc: BaseException, store_url: StoreURL) -> str:
    """The driver's own words, first line only, secrets scrubbed: what a one-line StoreError can carry."""
    inner: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return store_url.scrub(lines[0] if lines else type(inner).__name__)
