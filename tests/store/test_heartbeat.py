"""A live run's heartbeat: stamps while its process lives, stops when it dies, and readers call it stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompthone.cli import app
from prompthone.errors import StoreError
from prompthone.run.recorder import RunRecorder
from prompthone.store import RunStore
from prompthone.store.heartbeat import STALE_AFTER, Heartbeat, interval_s, is_stale
from prompthone.tasks.example import Example, Task

HERE = Path(__file__).parent
BEAT_S = 0.1
TASK = Task("beat", train=(Example("a", "b"),), dev=(Example("c", "d"),), test=())


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(BEAT_S / 4)


def test_the_interval_comes_from_the_environment_and_a_bad_one_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTHONE_HEARTBEAT_S", raising=False)
    assert interval_s() == 30.0
    monkeypatch.setenv("PROMPTHONE_HEARTBEAT_S", "2.5")
    assert interval_s() == 2.5
    for bad in ("soon", "0", "-1", "nan"):
        monkeypatch.setenv("PROMPTHONE_HEARTBEAT_S", bad)
        with pytest.raises(StoreError, match="PROMPTHONE_HEARTBEAT_S"):
            interval_s()


def test_stale_means_running_with_a_stamp_older_than_three_intervals(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTHONE_HEARTBEAT_S", "10")
    with RunStore(tmp_path / "s.sqlite") as store:
        run = store.get_run(store.create_run("r", method="ape", task="t", seed=0, config={}))
    beat = run.heartbeat_at
    assert beat is not None
    limit = timedelta(seconds=STALE_AFTER * 10)
    assert not is_stale(run, now=beat + limit)
    assert is_stale(run, now=beat + limit + timedelta(seconds=1))
    assert not is_stale(replace(run, status="finished"), now=beat + 10 * limit)  # an ended run is never stale


def test_the_recorder_beats_from_create_to_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTHONE_HEARTBEAT_S", str(BEAT_S))
    with RunStore(tmp_path / "s.sqlite") as store:
        rec = RunRecorder.create(store, "r", task=TASK, method="ape", seed=0, config={}, export_root=None)
        first = store.get_run(rec.run_id).heartbeat_at
        _wait_for(lambda: store.get_run(rec.run_id).heartbeat_at != first)
        assert rec._heartbeat is not None and rec._heartbeat.alive
        rec.finish("finished", {"steps": 0})
        assert rec._heartbeat is None
        last = store.get_run(rec.run_id).heartbeat_at
        time.sleep(3 * BEAT_S)
        assert store.get_run(rec.run_id).heartbeat_at == last  # nothing stamps an ended run
        rec.rewind(0, 1)  # a resume claims it again, and the beat starts again
        claimed = store.get_run(rec.run_id).heartbeat_at
        _wait_for(lambda: store.get_run(rec.run_id).heartbeat_at != claimed)
        rec.release()
        rec.release()  # idempotent


def test_a_failing_stamp_does_not_end_the_beat(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with RunStore(tmp_path / "s.sqlite") as store:
        run_id = store.create_run("r", method="ape", task="t", seed=0, config={})
        beat = Heartbeat(store, "no such run", interval=BEAT_S).start()
        _wait_for(lambda: "heartbeat of run no such run failed" in caplog.text)
        assert beat.alive
        beat.stop()
        assert not beat.alive
        assert store.get_run(run_id).status == "running"


def test_a_killed_runs_heartbeat_stops_and_runs_shows_it_stale(tmp_path: Path) -> None:
    store_url = str(tmp_path / "prompthone.sqlite")
    env = {**os.environ, "PROMPTHONE_HEARTBEAT_S": str(BEAT_S)}
    proc = subprocess.Popen([sys.executable, str(HERE / "heartbeat_writer.py"), store_url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert run_id == "beating", proc.communicate()[1]
    with RunStore(store_url) as store:
        created = store.get_run(run_id).heartbeat_at
        _wait_for(lambda: store.get_run(run_id).heartbeat_at != created)  # the thread stamps while it lives
        runner = CliRunner(env={"PROMPTHONE_HEARTBEAT_S": str(BEAT_S), "COLUMNS": "250"})
        live = runner.invoke(app, ["runs", "--store", store_url])
        assert live.exit_code == 0 and "running" in live.stdout and "stale" not in live.stdout, live.output
        proc.send_signal(signal.SIGKILL)  # no cleanup, no finish: the run stays "running"
        proc.communicate(timeout=60)
        last = store.get_run(run_id).heartbeat_at
        time.sleep((STALE_AFTER + 2) * BEAT_S)
        run = store.get_run(run_id)
        assert run.status == "running" and run.heartbeat_at == last  # the stamps stopped with the process
    dead = runner.invoke(app, ["runs", "--store", store_url])
    assert dead.exit_code == 0 and "running (stale)" in dead.stdout, dead.output
