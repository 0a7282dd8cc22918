"""The dashboard only reads: stores it cannot open are one StoreError and stay untouched; no route writes; `serve`
prints its URL and answers on loopback only by default."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient
from tests.dashboard.conftest import DashStore, build_store, example_counts

from prompthone.dashboard import create_app
from prompthone.errors import StoreError
from prompthone.store import RunStore
from prompthone.store.schema import VERSION_TABLE

TABLES = ("runs", "steps", "candidates", "examples", "evaluations", "events", VERSION_TABLE)


def snapshot(path: str | Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def open_error(store_url: str) -> str:
    with pytest.raises(StoreError) as err:
        create_app(store_url)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_missing_file_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "prompthone.sqlite"
    (tmp_path / "runs").mkdir()
    assert open_error(str(path)) == (f"cannot open store {path}: no such file (runs record into "
                                     "runs/prompthone.sqlite by default; pass that path or a postgresql:// URL)")
    assert not path.exists() and list((tmp_path / "runs").iterdir()) == []
    assert open_error(str(tmp_path)) == f"cannot open store {tmp_path}: it is a directory, not a database file"
    assert open_error(str(tmp_path / "no" / "dir.sqlite")).endswith("no such file (runs record into "
                                                                     "runs/prompthone.sqlite by default; pass "
                                                                     "that path or a postgresql:// URL)")


def test_a_database_without_a_run_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert open_error(str(empty)) == (f"store {empty} holds no prompthone runs (no run-store schema): "
                                      "check the path or URL")
    assert empty.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    before = other.read_bytes()
    assert "holds no prompthone runs" in open_error(f"sqlite:///{other}")
    assert other.read_bytes() == before
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    assert open_error(str(garbage)) == f"cannot open store {garbage}: file is not a database"


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = build_store(tmp_path)
    engine = create_engine(f"sqlite:///{store.url}")
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0042'"))
    engine.dispose()
    before = snapshot(store.url)
    assert open_error(store.url) == (f"store {store.url} has schema revision 0042, newer than this prompthone "
                                     "(knows up to 0001): upgrade prompthone")
    assert snapshot(store.url) == before


def test_an_unreachable_postgresql_store_is_one_line_with_the_password_masked() -> None:
    pytest.importorskip("psycopg")
    message = open_error("postgresql://someone:pg-s3cret-pw@127.0.0.1:1/runs")
    assert message.startswith("cannot open store postgresql://someone:***@127.0.0.1:1/runs: ")
    assert "pg-s3cret-pw" not in message


def test_no_route_writes_and_reading_everything_changes_nothing(dash_store: DashStore) -> None:
    before = snapshot(dash_store.url)
    with TestClient(create_app(dash_store.url)) as client:
        paths = ["/", "/api/runs", f"/compare?run={dash_store.opro}&run={dash_store.gepa}",
                 f"/api/compare?run={dash_store.opro}&run={dash_store.gepa}"]
        for run_id in (dash_store.opro, dash_store.gepa, dash_store.running):
            paths += [f"/runs/{run_id}", f"/api/runs/{run_id}", f"/runs/{run_id}/candidates/0",
                      f"/api/runs/{run_id}/candidates/1"]
        for path in paths:
            assert client.get(path).status_code == 200, path
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/", "/api/runs", f"/api/runs/{dash_store.opro}", f"/runs/{dash_store.opro}"):
                response = client.request(method, path)
                assert response.status_code == 405, (method, path)
    assert snapshot(dash_store.url) == before


def test_only_loopback_host_names_are_served_when_asked(dash_store: DashStore) -> None:
    app = create_app(dash_store.url, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        assert client.get("/api/runs").status_code == 200
    with TestClient(app, base_url="http://attacker.example:8765") as client:  # DNS rebinding
        assert client.get("/api/runs").status_code == 400


def test_serve_prints_its_url_and_serves_the_store(dash_store: DashStore) -> None:
    """The public entry point in its own process: port 0 picks a free port, the URL comes first on stderr."""
    code = f"from prompthone.dashboard import serve; serve({dash_store.url!r}, '127.0.0.1', 0)"
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(["src", os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith(f"prompthone dashboard of {dash_store.url} at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split()[0]
        assert url.endswith("/") and line.rstrip().endswith("(Ctrl-C stops it)")
        runs = httpx.get(url + "api/runs", timeout=30).json()["runs"]
        assert [r["id"] for r in runs] == [dash_store.running, dash_store.gepa, dash_store.opro]
        assert httpx.get(url.replace("127.0.0.1", "localhost") + "api/runs", timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert proc.wait(timeout=30) == 0
    assert "Traceback" not in proc.stderr.read()


def test_serve_on_a_store_it_cannot_open_says_so_before_listening(tmp_path: Path) -> None:
    from prompthone.dashboard import serve

    with pytest.raises(StoreError, match="no such file"):
        serve(str(tmp_path / "missing.sqlite"), "127.0.0.1", 0)


@pytest.mark.postgres
def test_a_postgresql_store_is_shown_like_a_sqlite_one(pg_url: str, tmp_path: Path) -> None:
    """The same runs recorded into PostgreSQL: the same views, and the store's password never shown."""
    from sqlalchemy import make_url

    store = build_store(tmp_path, pg_url)
    password = make_url(pg_url).password
    assert password
    with TestClient(create_app(pg_url)) as client, RunStore(pg_url) as db:
        listed = client.get("/api/runs").json()
        assert [r["id"] for r in listed["runs"]] == [store.running, store.gepa, store.opro]
        assert listed["store"] == db.url and password not in listed["store"] and "***" in listed["store"]
        result = db.get_run(store.gepa).result or {}
        view = client.get(f"/api/runs/{store.gepa}").json()
        assert view["run"]["best"]["id"] == result["best_candidate_id"]
        assert [c["scores"] for c in view["candidates"]] == [c["scores"] for c in db.candidates(store.gepa).values()]
        best = result["best_candidate_id"]
        cand = client.get(f"/api/runs/{store.gepa}/candidates/{best}").json()
        for cmp in cand["comparisons"]:
            counts = example_counts(db, store.gepa, best, cmp["key"])
            assert {k: cmp[k] for k in counts} == counts
        running = client.get("/api/runs/running-opro/candidates/1").json()["comparisons"][0]
        assert (running["wins"], running["losses"], running["ties"]) == (2, 1, 1)
        for path in ("/", f"/runs/{store.gepa}", "/runs/running-opro/candidates/1", "/runs/nope"):
            assert password not in client.get(path).text


def test_a_port_in_use_is_one_clear_error(dash_store: DashStore) -> None:
    from prompthone.dashboard import serve
    from prompthone.dashboard.server import bind
    from prompthone.errors import ConfigError

    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError) as err:
            serve(dash_store.url, "127.0.0.1", port)
    finally:
        taken.close()
    assert str(err.value) == (f"cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port "
                              "(0 picks a free one) or --host")
