"""Opening a store: schema creation and upgrade, a newer schema refused untouched, bad paths and URLs as one
line, passwords masked everywhere."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from prompthone.errors import PrompthoneError, StoreError
from prompthone.store import RunStore
from prompthone.store.engine import parse_store_url
from prompthone.store.migrate import alembic_config
from prompthone.store.schema import VERSION_TABLE, Base

PASSWORD = "hunter2-pw"


def _sa_url(store_url: str) -> str:
    """SQLAlchemy's form of a test store's address (psycopg v3 for PostgreSQL)."""
    if "://" not in store_url:
        return f"sqlite:///{store_url}"
    return store_url.replace("postgresql://", "postgresql+psycopg://", 1)


def _snapshot(store_url: str) -> list[Any]:
    """Every table's rows and the schema revision: what 'changes nothing' compares."""
    engine = create_engine(_sa_url(store_url))
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return [(t, sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{t}"')).all()), key=repr))
                    for t in tables]
    finally:
        engine.dispose()


def test_default_store_is_a_sqlite_file_in_the_runs_dir(tmp_path: Path) -> None:
    with RunStore.default(tmp_path / "runs") as store:
        store.create_run("r", method="ape", task="t", seed=0, config={})
        assert repr(store) == f"RunStore({str(tmp_path / 'runs' / 'prompthone.sqlite')!r})"
    assert (tmp_path / "runs" / "prompthone.sqlite").is_file()
    with RunStore(f"sqlite:///{tmp_path / 'runs' / 'prompthone.sqlite'}") as again:  # the same file by URL
        assert [r.id for r in again.list_runs()] == ["r"]
        with again._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_newer_schema_is_refused_and_left_alone(store_url: str) -> None:
    with RunStore(store_url) as store:
        store.create_run("r", method="ape", task="t", seed=0, config={"k": 1})
    engine = create_engine(_sa_url(store_url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0042'"))
    engine.dispose()
    before = _snapshot(store_url)
    with pytest.raises(StoreError) as err:
        RunStore(store_url)
    message = str(err.value)
    assert message.startswith("store ") and "\n" not in message
    assert message.endswith("has schema revision 0042, newer than this prompthone (knows up to 0001): "
                            "upgrade prompthone")
    assert PASSWORD not in message and "pg-s3cret-pw" not in message
    assert _snapshot(store_url) == before


def test_a_store_made_at_the_first_revision_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    command.upgrade(alembic_config(url=f"sqlite:///{path}"), "0001")  # through env.py's own-engine path
    with RunStore(path) as store:
        assert store.create_run("r", method="ape", task="t", seed=0, config={}) == "r"
        assert store.get_run("r").status == "running"


def test_an_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.touch()
    with RunStore(str(path)) as store:
        assert store.list_runs() == []


def test_the_migrations_build_exactly_the_orm_schema(tmp_path: Path) -> None:
    RunStore(tmp_path / "s.sqlite").close()
    engine = create_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


@pytest.mark.parametrize("make", ["directory", "not_a_database", "missing_parent"])
def test_unopenable_paths_give_one_line(tmp_path: Path, make: str) -> None:
    target = tmp_path / "store.sqlite"
    if make == "directory":
        target.mkdir()
    elif make == "not_a_database":
        target.write_bytes(b"this is a text file, not SQLite\n" * 200)
    else:
        target = tmp_path / "no" / "such" / "store.sqlite"
    before = target.read_bytes() if target.is_file() else None
    with pytest.raises(StoreError) as err:
        RunStore(target)
    message = str(err.value)
    assert message.startswith(f"cannot open store {target}: ") and "\n" not in message
    assert isinstance(err.value, PrompthoneError)  # the CLI's one line and exit code 2
    if before is not None:
        assert target.read_bytes() == before


def test_tables_without_a_revision_are_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "foreign.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY)")
    with pytest.raises(StoreError, match="has run-store tables \\(runs\\) but no schema revision"):
        RunStore(path)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket closes


@pytest.mark.parametrize("url", [
    "postgresql://alice:{pw}@127.0.0.1:{port}/prompthone",
    "postgresql://alice@127.0.0.1:{port}/prompthone?password={pw}",
])
def test_unreachable_postgres_fails_fast_with_the_password_masked(url: str) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra: pip install 'prompthone[postgres]'")
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        RunStore(url.format(pw=PASSWORD, port=_closed_port()))
    message = str(err.value)
    assert time.monotonic() - started < 10
    assert message.startswith("cannot open store postgresql://alice") and "***" in message
    assert PASSWORD not in message and "\n" not in message


def test_urls_are_masked_and_mapped_to_psycopg() -> None:
    parsed = parse_store_url(f"postgresql://bob:{PASSWORD}@db.example:5432/runs")
    assert parsed.display == "postgresql://bob:***@db.example:5432/runs"
    assert parsed.url.drivername == "postgresql+psycopg" and parsed.url.password == PASSWORD
    assert parsed.scrub(f"auth failed for {PASSWORD}") == "auth failed for ***"
    assert make_url(parse_store_url("sqlite:///x.db").display).database == "x.db"
    with pytest.raises(StoreError, match="unsupported database 'mysql'") as err:
        parse_store_url(f"mysql://bob:{PASSWORD}@h/db")
    assert PASSWORD not in str(err.value)
    with pytest.raises(StoreError) as err:
        parse_store_url(f"postgresql://bob:{PASSWORD}@h:notaport/db")
    assert PASSWORD not in str(err.value)


@pytest.mark.postgres
def test_a_postgres_store_never_shows_its_password(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    password = make_url(pg_url).password
    assert password
    caplog.set_level("DEBUG")
    with RunStore(pg_url) as store:
        store.create_run("r", method="ape", task="t", seed=0, config={})
        assert password not in repr(store) and ":***@" in repr(store) and password not in store.url
        with pytest.raises(StoreError) as err:
            store.get_run("nope")
        assert password not in str(err.value) and ":***@" in str(err.value)
    assert password not in caplog.text


def test_a_lock_the_busy_timeout_does_not_cover_is_waited_out_at_connect() -> None:
    """WAL recovery and cleanup answer "database is locked" at once, busy timeout or not: the connect retries."""
    from prompthone.store import engine as engines

    calls: list[int] = []

    def statement() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    engines._while_locked(statement)
    assert len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        engines._while_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")))
