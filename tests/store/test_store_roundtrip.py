"""Every write of `RunStore` read back, on SQLite and PostgreSQL: upserts, id suffixes, resume cuts, export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from prompthone.errors import StoreError
from prompthone.store import RunStore
from prompthone.store.export import export_run_dir
from prompthone.store.run_dir import read_candidates


def cand(cand_id: int, *, step: int = 0, dev: float | None = None, **extra: Any) -> dict[str, Any]:
    scores = {} if dev is None else {"dev": dev}
    return {"id": cand_id, "parent": None if cand_id == 0 else 0, "origin": "seed" if cand_id == 0 else "edit",
            "step": step, "prompt": {"instruction": f"Say yes {cand_id} — ünïcode", "demos": []},
            "scores": scores, "n_scored": {k: 8 for k in scores}, "data": {"why": ["a", "b"]}, **extra}


def new_run(store: RunStore, run_id: str = "20261122-apo-demo") -> str:
    return store.create_run(run_id, method="apo", task="demo", seed=7, config={"budget": {"calls": 400}})


def test_run_row_round_trip(store: RunStore) -> None:
    run_id = new_run(store)
    run = store.get_run(run_id)
    assert (run.id, run.method, run.task, run.status, run.seed) == (run_id, "apo", "demo", "running", 7)
    assert run.config == {"budget": {"calls": 400}} and run.result is None and run.finished_at is None
    assert run.created_at.tzinfo is not None and run.heartbeat_at is not None and run.pid is not None
    store.heartbeat(run_id)
    assert store.get_run(run_id).heartbeat_at >= run.heartbeat_at
    result = {"best_dev_score": 0.75, "test_score": math.nan, "best_prompt": {"instruction": "x"}}
    store.finish_run(run_id, "finished", result)
    done = store.get_run(run_id)
    assert done.status == "finished" and done.finished_at is not None
    assert done.result is not None and done.result["best_dev_score"] == 0.75 and math.isnan(done.result["test_score"])
    store.set_status(run_id, "running")  # a resume
    assert store.get_run(run_id).finished_at is None and store.get_run(run_id).status == "running"


def test_candidates_upsert_keeps_the_latest(store: RunStore) -> None:
    run_id = new_run(store)
    store.record_candidate(run_id, cand(0))
    store.record_candidate(run_id, cand(1, step=1, calls_so_far=3))
    store.record_candidate(run_id, cand(0, dev=0.5, calls_so_far=9))
    got = store.candidates(run_id)
    assert list(got) == [0, 1]
    assert got[0] == cand(0, dev=0.5, calls_so_far=9)  # extra keys survive, in order
    assert list(got[0]) == list(cand(0, dev=0.5, calls_so_far=9))
    assert got[1] == cand(1, step=1, calls_so_far=3)


def test_steps_events_checkpoints(store: RunStore) -> None:
    run_id = new_run(store)
    store.record_event(run_id, {"event": "start"})  # before any step: step 0
    for step in (1, 2, 3):
        store.record_event(run_id, {"event": "reflection", "iteration": step - 1})
        store.record_step(run_id, {"step": step, "best_id": 0, "spend": {"calls": step * 10}},
                          checkpoint={"step": step, "data": "x" * step} if step != 3 else None)
        store.record_event(run_id, {"event": "after", "n": step})
    assert [s["step"] for s in store.steps(run_id)] == [1, 2, 3]
    assert store.steps(run_id)[1] == {"step": 2, "best_id": 0, "spend": {"calls": 20}}
    assert [e["event"] for e in store.events(run_id)][:3] == ["start", "reflection", "after"]
    assert len(store.events(run_id)) == 7
    assert store.last_checkpoint(run_id) == (2, {"step": 2, "data": "xx"})
    store.record_step(run_id, {"step": 3, "best_id": 1}, checkpoint={"step": 3})  # re-recorded: overwrites
    assert store.steps(run_id)[-1] == {"step": 3, "best_id": 1}
    assert store.last_checkpoint(run_id) == (3, {"step": 3})


def test_delete_steps_after_drops_what_followed_the_checkpoint(store: RunStore) -> None:
    run_id = new_run(store)
    store.record_event(run_id, {"event": "start"})
    for step in (1, 2, 3):
        store.record_event(run_id, {"event": "during", "iteration": step - 1})
        store.record_step(run_id, {"step": step}, checkpoint={"step": step})
        store.record_event(run_id, {"event": "after", "n": step})
    store.delete_steps_after(run_id, 2)
    assert [s["step"] for s in store.steps(run_id)] == [1, 2]
    kept = [(e["event"], e.get("iteration", e.get("n"))) for e in store.events(run_id)]
    assert kept == [("start", None), ("during", 0), ("after", 1), ("during", 1)]
    store.record_event(run_id, {"event": "during", "iteration": 2})  # the resumed run appends after the kept ones
    assert store.events(run_id)[-1] == {"event": "during", "iteration": 2}
    assert store.last_checkpoint(run_id) == (2, {"step": 2})


def test_examples_are_idempotent_and_evaluations_upsert(store: RunStore) -> None:
    run_id = new_run(store)
    rows = [{"hash": f"h{i}", "split": "dev", "index": i, "input": f"in {i}", "target": "yes"} for i in range(3)]
    store.record_examples(run_id, rows)
    twice = {"hash": "h0", "split": "test", "index": 0, "input": "in 0", "target": "yes"}  # same example in test
    train = {"hash": "h9", "split": "train", "index": 0, "input": "in 9", "target": "no"}
    store.record_examples(run_id, [twice, *rows, train])
    assert store.examples(run_id) == [train, *rows, twice]  # task order; each place kept, duplicates too
    store.record_evaluations(run_id, 0, "dev", [{"hash": f"h{i}", "score": 0.0, "prediction": "no"} for i in range(3)])
    store.record_evaluations(run_id, 1, "dev", [{"hash": "h0", "score": 1.0, "prediction": None}])
    store.record_evaluations(run_id, 0, "dev", [{"hash": "h1", "score": 1.0, "prediction": "yes"},
                                                {"hash": "h1", "score": 0.5, "prediction": "maybe"}])
    assert store.evaluations(run_id, cand_id=1) == [
        {"cand_id": 1, "key": "dev", "hash": "h0", "score": 1.0, "prediction": None}]
    zero = store.evaluations(run_id, cand_id=0)
    assert [(e["hash"], e["score"], e["prediction"]) for e in zero] == [
        ("h0", 0.0, "no"), ("h1", 0.5, "maybe"), ("h2", 0.0, "no")]
    assert len(store.evaluations(run_id)) == 4
    store.record_evaluations(run_id, 0, "dev", [])  # nothing to write is fine


def test_run_ids_get_suffixes_and_list_newest_first(store: RunStore) -> None:
    assert [new_run(store, "r") for _ in range(3)] == ["r", "r-2", "r-3"]
    other = new_run(store, "other")
    store.finish_run("r-2", "failed", None)
    assert [r.id for r in store.list_runs()] == [other, "r-3", "r-2", "r"]
    assert [r.id for r in store.list_runs(limit=2)] == [other, "r-3"]
    assert [r.id for r in store.list_runs(status="failed")] == ["r-2"]


def test_unknown_run_names_recent_ones_and_changes_nothing(store: RunStore) -> None:
    for n in range(7):
        new_run(store, f"run{n}")
    before = store.list_runs()
    with pytest.raises(StoreError) as err:
        store.get_run("nope")
    message = str(err.value)
    assert message.startswith("no run 'nope' in store ") and "most recent: run6, run5, run4, run3, run2" in message
    assert "run1" not in message and "\n" not in message
    for write in (lambda: store.record_step("nope", {"step": 1}), lambda: store.record_candidate("nope", cand(0)),
                  lambda: store.record_event("nope", {"event": "x"}), lambda: store.heartbeat("nope"),
                  lambda: store.finish_run("nope", "failed", None), lambda: store.candidates("nope"),
                  lambda: store.record_evaluations("nope", 0, "dev", [{"hash": "h", "score": 1.0}])):
        with pytest.raises(StoreError, match="no run 'nope'"):
            write()
    assert store.list_runs() == before
    new_run(store, "nope")  # the failed writes left no orphan rows behind
    assert (store.steps("nope"), store.candidates("nope"), store.events("nope")) == ([], {}, [])
    assert store.evaluations("nope") == []


def test_bad_statuses_are_refused(store: RunStore) -> None:
    run_id = new_run(store)
    with pytest.raises(StoreError, match="unknown run status 'done'"):
        store.set_status(run_id, "done")
    with pytest.raises(StoreError, match="a run ends as one of"):
        store.finish_run(run_id, "running", None)
    assert store.get_run(run_id).status == "running"


def _filled_run(store: RunStore) -> str:
    run_id = new_run(store)
    for i in range(3):
        store.record_candidate(run_id, cand(i, step=i))
    store.record_candidate(run_id, cand(1, step=1, dev=0.25, calls_so_far=4))
    store.record_step(run_id, {"step": 1, "best_id": 1}, checkpoint={"opaque": True})
    store.record_event(run_id, {"event": "x", "iteration": 0})
    store.record_examples(run_id, [{"hash": "h0", "split": "dev", "index": 0, "input": "i", "target": "t"}])
    store.record_evaluations(run_id, 1, "dev", [{"hash": "h0", "score": 1.0, "prediction": "t"}])
    return run_id


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_run_dir_reads_back(store: RunStore, tmp_path: Path) -> None:
    run_id = _filled_run(store)
    target = export_run_dir(store, run_id, tmp_path / "exports" / run_id)
    assert not (target / "result.json").exists()  # still running: no result yet
    assert read_candidates(target) == store.candidates(run_id)
    assert _lines(target / "steps.jsonl") == store.steps(run_id)
    assert _lines(target / "events.jsonl") == store.events(run_id)
    assert _lines(target / "examples.jsonl") == store.examples(run_id)
    assert _lines(target / "evaluations.jsonl") == [
        {"candidate": 1, "key": "dev", "hash": "h0", "prediction": "t", "score": 1.0}]  # the driver's line format
    assert json.loads((target / "config.json").read_text()) == {"budget": {"calls": 400}}
    assert json.loads((target / "run.json").read_text())["status"] == "running"
    store.finish_run(run_id, "finished", {"test_score": math.nan})
    (target / "report.html").write_text("<html>mine</html>")
    export_run_dir(store, run_id, target)  # an earlier export of the same run is replaced
    assert math.isnan(json.loads((target / "result.json").read_text())["test_score"])
    assert (target / "report.html").read_text() == "<html>mine</html>"  # what else it held is kept
    assert json.loads((target / "run.json").read_text())["status"] == "finished"
    assert sorted(p.name for p in target.parent.iterdir()) == [run_id]  # no temporary directories left


def test_export_refuses_a_directory_it_did_not_write(store: RunStore, tmp_path: Path) -> None:
    run_id = _filled_run(store)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="is not an earlier export"):
        export_run_dir(store, run_id, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_rewinding_for_a_resume(store: RunStore) -> None:
    run_id = new_run(store)
    for i in range(4):
        store.record_candidate(run_id, cand(i, step=i))
        store.record_evaluations(run_id, i, "dev", [{"hash": "h0", "score": float(i)}])
    store.finish_run(run_id, "interrupted", {"stopped_reason": "interrupted"})
    store.delete_candidates_from(run_id, 2)  # the checkpoint's next id: 2 and 3 are made again
    assert list(store.candidates(run_id)) == [0, 1]
    assert [e["cand_id"] for e in store.evaluations(run_id)] == [0, 1]
    store.claim_run(run_id)
    run = store.get_run(run_id)
    assert (run.status, run.result, run.finished_at) == ("running", None, None)
    assert run.host and run.pid is not None
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.get_run("nope")
