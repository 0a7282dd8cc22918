"""A run store for the dashboard tests: real OPRO and GEPA runs (the real driver, a deterministic fake model), and
runs left "running" that the tests write into themselves, as a live optimization would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.optimizers.test_checkpoint_resume import SMALL, InstructionModel, _task
from tests.store.conftest import pg_admin_url, pg_url  # noqa: F401  (the PostgreSQL store fixtures)

from prompthone.optimizers import get_method
from prompthone.run.driver import run_optimization
from prompthone.store import RunStore

#: a prompt that would run script, make markup and break out of attributes if it were not escaped
INJECTED = "<script>alert(1)</script> Classify the sentiment & answer <b>positive</b> or \"negative\"."
SEED_INSTRUCTION = "Classify the sentiment of the review."
#: per dev example (hash -> (seed's score, candidate 1's score)): one tie, two wins, one loss
DEV_SCORES = {"h0": (1.0, 1.0), "h1": (0.0, 1.0), "h2": (1.0, 0.0), "h3": (0.0, 1.0)}
SPEND = {"calls": 10, "new_calls": 10, "cache_hits": 0, "prompt_tokens": 90, "completion_tokens": 10, "tokens": 100,
         "new_tokens": 100, "by_role": {"task": 8, "meta": 2}}


@dataclass(frozen=True)
class DashStore:
    """The store's path and its runs' ids."""

    url: str
    opro: str
    gepa: str
    running: str


def prompt(instruction: str, system: str | None = None) -> dict[str, Any]:
    return {"instruction": instruction, "system": system, "demos": [], "output_format": "",
            "instruction_position": "before", "reasoning_tokens": 0, "extractor": "Therefore, the final answer is"}


def spend_at(step: int) -> dict[str, Any]:
    return {k: (v * step if isinstance(v, int) else {r: n * step for r, n in v.items()}) for k, v in SPEND.items()}


def start_running_run(store: RunStore, run_id: str) -> str:
    """A running OPRO-shaped run, two steps in: seed #0, #1 (the injected prompt, the best), #2; dev examples with
    per-example scores of #0 and #1 (`DEV_SCORES`)."""
    run_id = store.create_run(run_id, method="opro", task="fake-sentiment", seed=1,
                              config={"method": "opro", "task": {"name": "fake-sentiment"},
                                      "task_model": "fake:instructions", "meta_model": "fake:meta"})
    store.record_examples(run_id, [{"hash": h, "split": "dev", "index": i, "input": f"review {i}: <i>fine</i> film",
                                    "target": "positive" if i % 2 else "negative"} for i, h in enumerate(DEV_SCORES)])
    cands = [(0, None, "seed", 0, prompt(SEED_INSTRUCTION), {"dev": 0.5, "train": 0.5}),
             (1, 0, "opro", 0, prompt(INJECTED, system="You are <careful>."), {"dev": 0.75, "train": 0.75}),
             (2, 1, "opro", 1, prompt("Decide the label."), {"train": 0.25, "dev": float("nan")})]
    for cid, parent, origin, step, text, scores in cands:
        store.record_candidate(run_id, {"id": cid, "parent": parent, "origin": origin, "step": step, "prompt": text,
                                        "scores": scores, "n_scored": {k: 4 for k in scores}, "data": {}})
    for cid, which in ((0, 0), (1, 1)):
        store.record_evaluations(run_id, cid, "dev", [
            {"hash": h, "score": pair[which], "prediction": f"<{'negative' if pair[which] == 0 else 'ok'}> by #{cid}"}
            for h, pair in DEV_SCORES.items()])
    for step, best in ((1, (0, 0.5)), (2, (1, 0.75))):
        add_step(store, run_id, step, best[0], best[1])
    return run_id


def add_step(store: RunStore, run_id: str, step: int, best_id: int, best_score: float) -> None:
    store.record_step(run_id, {"step": step, "best_id": best_id, "best_score": best_score, "spend": spend_at(step),
                               "elapsed_s": 0.5 * step, "frontier": [best_id]})


def build_store(root: Path, url: str | None = None) -> DashStore:
    """A store (`url`, default a SQLite file in `root`): an OPRO and a GEPA run made by the real driver, finished,
    and a running run."""
    url = url or str(root / "prompthone.sqlite")
    ids = {}
    for method, seed in (("opro", 3), ("gepa", 5)):
        result = run_optimization(_task(), get_method(method).from_options(SMALL[method]),
                                  task_model=InstructionModel(), seed=seed, run_root=root / "runs", store=url,
                                  progress=False)
        ids[method] = Path(result.run_dir or "").name
    with RunStore(url) as store:
        running = start_running_run(store, "running-opro")
    return DashStore(url, ids["opro"], ids["gepa"], running)


def example_counts(store: RunStore, run_id: str, cand_id: int, key: str) -> dict[str, int]:
    """Wins, losses, ties against candidate 0 under `key`, counted from the store's evaluations directly."""
    mine = {e["hash"]: e["score"] for e in store.evaluations(run_id, cand_id) if e["key"] == key}
    seed = {e["hash"]: e["score"] for e in store.evaluations(run_id, 0) if e["key"] == key}
    shared = mine.keys() & seed.keys()
    return {"wins": sum(mine[h] > seed[h] for h in shared), "losses": sum(mine[h] < seed[h] for h in shared),
            "ties": sum(mine[h] == seed[h] for h in shared), "unpaired": len(mine.keys() - seed.keys())}


@pytest.fixture(scope="session")
def dash_store(tmp_path_factory: pytest.TempPathFactory) -> DashStore:
    """The store the API tests read (never written to by a test)."""
    return build_store(tmp_path_factory.mktemp("dashboard"))


@contextmanager
def serving(store_url: str, refresh_s: float = 0.4) -> Iterator[str]:
    """The dashboard served by uvicorn on a free port of 127.0.0.1 from a background thread; yields its URL."""
    from prompthone.dashboard import create_app
    from prompthone.dashboard.server import LOOPBACK_HOSTS, bind, make_server, url_of

    sock = bind("127.0.0.1", 0)  # listening already: requests wait in the backlog until uvicorn takes them
    server = make_server(create_app(store_url, refresh_s=refresh_s, allowed_hosts=LOOPBACK_HOSTS))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
