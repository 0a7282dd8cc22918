"""A worker process for the concurrency tests: writes one whole run into a shared store.

Usage: python store_writer.py STORE RUN_ID. It opens the store (racing the other openers on a fresh
database), creates the run, prints the id it got, waits for a line on stdin (so that the test starts all
writers together), then writes 200 candidate upserts, 50 steps, 100 events and 50 evaluation batches.
"""

from __future__ import annotations

import sys

from prompthone.store import RunStore

N_CANDIDATES, N_UPSERTS, N_STEPS, N_EXAMPLES = 40, 200, 50, 20


def expected_score(cand_id: int) -> float:
    """The dev score of a candidate's last upsert (upsert u writes candidate u % 40 with score u / 200)."""
    last = max(u for u in range(N_UPSERTS) if u % N_CANDIDATES == cand_id)
    return last / N_UPSERTS


def main(store_url: str, run_id: str) -> None:
    with RunStore(store_url) as store:
        run_id = store.create_run(run_id, method="ape", task="concurrency", seed=1, config={"writer": run_id})
        print(run_id, flush=True)
        sys.stdin.readline()
        store.record_examples(run_id, [{"hash": f"h{i:02d}", "split": "dev", "index": i, "input": f"in {i}",
                                        "target": "yes"} for i in range(N_EXAMPLES)])
        per_step = N_UPSERTS // N_STEPS
        for step in range(1, N_STEPS + 1):
            for u in range((step - 1) * per_step, step * per_step):
                store.record_candidate(run_id, {
                    "id": u % N_CANDIDATES, "parent": None, "origin": "w", "step": step - 1,
                    "prompt": {"instruction": f"p{u % N_CANDIDATES}"}, "scores": {"dev": u / N_UPSERTS},
                    "n_scored": {"dev": u}, "data": {}})
            store.record_event(run_id, {"event": "propose", "iteration": step - 1})
            store.record_evaluations(run_id, step % N_CANDIDATES, "dev", [
                {"hash": f"h{i:02d}", "score": float(step), "prediction": str(step)} for i in range(N_EXAMPLES)])
            checkpoint = {"step": step} if step % 10 == 0 else None
            store.record_step(run_id, {"step": step, "best_id": 0}, checkpoint=checkpoint)
            store.record_event(run_id, {"event": "select", "n": step})
            store.heartbeat(run_id)
        store.finish_run(run_id, "finished", {"steps": N_STEPS})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
