"""Store fixtures: a SQLite file per test, and a real PostgreSQL server per session (nothing mocked).

PostgreSQL comes from `PROMPTHONE_TEST_PG_URL` (a role that may CREATE DATABASE) or, without it, from a
throwaway cluster this fixture makes with `initdb` in a temporary directory on a free port (as the `postgres`
system user when the tests run as root: initdb refuses root). Each test gets its own fresh database. When no
server can be had the postgres tests fail, saying how to provide one; `-m "not postgres"` deselects them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prompthone.store import RunStore

HOW_TO = ("PostgreSQL store tests need a server: set PROMPTHONE_TEST_PG_URL=postgresql://USER:PASSWORD@HOST:PORT/DB "
          "(a role allowed to CREATE DATABASE), or install the server binaries (Debian: apt-get install postgresql; "
          "initdb is looked up in /usr/lib/postgresql/*/bin and on PATH) so the tests start a throwaway one; "
          "or deselect these tests with -m 'not postgres'")
#: what a user would type: the password is real text that must never show (the throwaway server trusts local logins)
PG_PASSWORD = "pg-s3cret-pw"


@dataclass
class _Cluster:
    root: Path
    bindir: Path
    as_user: list[str]

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args],
                              capture_output=True, text=True, timeout=60, check=False)


def _initdb() -> Path | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    path = found[-1] if found else shutil.which("initdb")
    return Path(path) if path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_cluster() -> tuple[_Cluster, str]:
    initdb = _initdb()
    if initdb is None:
        pytest.fail(f"no initdb found. {HOW_TO}", pytrace=False)
    as_user: list[str] = []
    # /tmp itself, not pytest's tmp dir: that one is private to root and the server user could not enter it.
    root = Path(tempfile.mkdtemp(prefix="prompthone-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.fail(f"running as root and no runuser to start PostgreSQL as user postgres. {HOW_TO}", pytrace=False)
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, OSError) as exc:
            pytest.fail(f"running as root and cannot hand {root} to user postgres ({exc}). {HOW_TO}", pytrace=False)
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster = _Cluster(root, initdb.parent, as_user)
    init = subprocess.run([*as_user, str(initdb), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                           "-E", "UTF8", "--locale=C", "--no-sync"],
                          capture_output=True, text=True, timeout=120, check=False)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.strip()[-500:]}. {HOW_TO}", pytrace=False)
    port = _free_port()
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off")
    start = cluster.pg_ctl("-l", str(root / "server.log"), "-w", "-t", "60", "-o", options, "start")
    if start.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-800:] if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {start.stderr.strip()} {log}. {HOW_TO}", pytrace=False)
    return cluster, f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/postgres"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL URL whose role may create databases: the user's, or a throwaway server's."""
    given = os.environ.get("PROMPTHONE_TEST_PG_URL")
    if given:
        yield given
        return
    cluster, url = _start_cluster()
    try:
        yield url
    finally:
        cluster.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(cluster.root, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    from sqlalchemy import make_url

    try:
        import psycopg
    except ModuleNotFoundError:
        pytest.fail("the PostgreSQL driver is missing: pip install 'prompthone[postgres]' "
                    "(or deselect with -m 'not postgres')", pytrace=False)

    sa_url = make_url(url)
    try:
        with psycopg.connect(host=sa_url.host, port=sa_url.port, user=sa_url.username, password=sa_url.password,
                             dbname=sa_url.database, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        where = sa_url.render_as_string(hide_password=True)
        pytest.fail(f"cannot use PostgreSQL at {where}: {str(exc).strip().splitlines()[0]}. {HOW_TO}", pytrace=False)


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    from sqlalchemy import make_url

    name = f"prompthone_test_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f"CREATE DATABASE {name}")
    try:
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(pg_admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a SQLite file path, then a PostgreSQL URL (with a password, to check masking)."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    with RunStore(store_url) as opened:
        yield opened
