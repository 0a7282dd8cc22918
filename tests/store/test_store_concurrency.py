"""Two processes write two runs into one store while a third reads, on SQLite (WAL) and PostgreSQL: every
write lands, reads never see a step missing, and the latest candidate state wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from store_writer import N_CANDIDATES, N_EXAMPLES, N_STEPS, expected_score

from prompthone.store import RunStore

WRITER = Path(__file__).with_name("store_writer.py")


def _spawn(store_url: str, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(WRITER), store_url, run_id], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_writers_and_a_reader_share_one_store(store_url: str) -> None:
    writers = [_spawn(store_url, "shared"), _spawn(store_url, "shared")]  # same id: one of them gets "shared-2"
    with RunStore(store_url) as reader:  # a third opener racing the writers' schema creation
        run_ids = []
        for proc in writers:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line, proc.communicate()[1]
            run_ids.append(line)
        assert sorted(run_ids) == ["shared", "shared-2"]
        for proc in writers:  # go: both write at once from here
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reads, seen_steps, seen_candidates = 0, dict.fromkeys(run_ids, 0), dict.fromkeys(run_ids, 0)
        while any(proc.poll() is None for proc in writers):
            for run_id in run_ids:
                steps = [s["step"] for s in reader.steps(run_id)]
                assert steps == list(range(1, len(steps) + 1))  # a reader never sees a gap
                n_candidates = len(reader.candidates(run_id))
                assert len(steps) >= seen_steps[run_id] and n_candidates >= seen_candidates[run_id]
                seen_steps[run_id], seen_candidates[run_id] = len(steps), n_candidates
                reads += 1
        for proc in writers:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        assert reads > 0
        for run_id in run_ids:
            assert reader.get_run(run_id).status == "finished"
            assert [s["step"] for s in reader.steps(run_id)] == list(range(1, N_STEPS + 1))
            events = reader.events(run_id)
            assert len(events) == 2 * N_STEPS
            assert [e.get("iteration", e.get("n")) for e in events[:4]] == [0, 1, 1, 2]
            candidates = reader.candidates(run_id)
            assert sorted(candidates) == list(range(N_CANDIDATES))
            assert all(c["scores"]["dev"] == expected_score(i) for i, c in candidates.items())
            assert len(reader.examples(run_id)) == N_EXAMPLES
            evaluations = reader.evaluations(run_id)
            assert len(evaluations) == N_CANDIDATES * N_EXAMPLES
            assert {e["score"] for e in evaluations if e["cand_id"] == 1} == {41.0}  # step 41 overwrote step 1
            assert reader.last_checkpoint(run_id) == (N_STEPS, {"step": N_STEPS})


def test_a_killed_writer_loses_at_most_the_write_in_flight(tmp_path: Path) -> None:
    store_url = str(tmp_path / "store.sqlite")
    proc = _spawn(store_url, "killed")
    assert proc.stdout is not None and proc.stdin is not None
    run_id = proc.stdout.readline().strip()
    assert run_id == "killed", proc.communicate()[1]
    with RunStore(store_url) as reader:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        while len(reader.steps(run_id)) < 5 and proc.poll() is None:
            pass
        proc.kill()  # SIGKILL mid-run: no cleanup, no rollback handler
        proc.communicate(timeout=60)
    with RunStore(store_url) as store:  # a new process's view: intact, and the run can go on
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        steps = [s["step"] for s in store.steps(run_id)]
        assert len(steps) >= 5 and steps == list(range(1, len(steps) + 1))
        assert store.get_run(run_id).status == "running"
        store.record_step(run_id, {"step": len(steps) + 1})
        store.finish_run(run_id, "interrupted", None)
        assert store.get_run(run_id).status == "interrupted"


def test_two_optimizations_record_into_one_store_at_once(store_url: str, tmp_path: Path) -> None:
    script = Path(__file__).with_name("optimize_writer.py")
    procs = [subprocess.Popen([sys.executable, str(script), store_url, str(tmp_path / f"export{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    run_ids = [Path(r["run_dir"]).name for r in results]
    assert len(set(run_ids)) == 2  # same second, same method and task: the second id got a suffix
    with RunStore(store_url) as store:
        for result, run_id in zip(results, run_ids, strict=True):
            run = store.get_run(run_id)
            assert run.status == "finished" and run.result is not None
            assert run.result["best_prompt"] == result["best_prompt"]
            assert len(store.candidates(run_id)) == result["n_candidates"]
            assert [s["step"] for s in store.steps(run_id)] == list(range(1, result["steps"] + 1))
            evaluations = store.evaluations(run_id)
            assert {e["cand_id"] for e in evaluations} <= set(store.candidates(run_id))
    # the same seed and model: the two concurrent runs found the same thing, as a run alone would
    assert results[0]["best_prompt"] == results[1]["best_prompt"] and results[0]["steps"] == results[1]["steps"]
