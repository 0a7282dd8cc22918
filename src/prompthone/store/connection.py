"""The store's connection layer: opening (URL, engine, migrations), masking, and one-transaction helpers.

Every public call of `RunStore` is one of these short transactions. Driver errors become `StoreError` with the
driver's first line and the masked URL; an IntegrityError is left to the caller, who knows what it means.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prompthone.errors import StoreError
from prompthone.store import engine as engines
from prompthone.store.migrate import upgrade_to_head
from prompthone.store.schema import Base

RUNS = Base.metadata.tables["runs"]


class StoreConnection:
    """An open store: engine, masked URL, schema at head, and one-transaction helpers for `RunStore`."""

    def __init__(self, url: str | Path) -> None:
        self._url = engines.parse_store_url(url)
        self._engine = engines.make_engine(self._url)
        self._sqlite = self._url.is_sqlite
        try:
            upgrade_to_head(self._engine, self._url.display)
        except StoreError:
            self._engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            self._engine.dispose()
            raise StoreError(f"cannot open store {self._url.display}: {engines.reason(exc, self._url)}") from None

    @property
    def url(self) -> str:
        """The store's URL with any password masked: the only form of it that may be shown."""
        return self._url.display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url.display!r})"

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        """One short transaction; a write takes SQLite's write lock up front (see `engine`)."""
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self._url.display}: {engines.reason(exc, self._url)}") from None

    @contextmanager
    def _run_tx(self, run_id: str) -> Iterator[Connection]:
        """A write into one run's rows: a foreign-key failure becomes the same 'no run' error as a read's."""
        try:
            with self._tx() as conn:
                yield conn
        except IntegrityError as exc:
            with self._tx(write=False) as conn:
                self._require_run(conn, run_id)
            raise StoreError(f"store {self._url.display}: {engines.reason(exc, self._url)}") from None

    def _insert(self, table: Table) -> Any:
        return (sqlite_insert if self._sqlite else pg_insert)(table)

    def _upsert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
        """Insert or overwrite `rows` (one executemany, not a statement per row)."""
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={c: stmt.excluded[c] for c in rows[0] if c not in keys})
        conn.execute(stmt, list(rows))

    def _require_run(self, conn: Connection, run_id: str) -> None:
        if conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            recent = conn.execute(select(RUNS.c.id).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
                                  .limit(5)).scalars().all()
            hint = f"; most recent: {', '.join(recent)}" if recent else "; the store has no runs"
            raise StoreError(f"no run {run_id!r} in store {self._url.display}{hint}")

    def _update_run(self, run_id: str, **values: Any) -> None:
        with self._tx() as conn:
            if conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values)).rowcount == 0:
                self._require_run(conn, run_id)

    def _read(self, run_id: str, query: Any) -> list[Any]:
        with self._tx(write=False) as conn:
            self._require_run(conn, run_id)
            return list(conn.execute(query).mappings())
