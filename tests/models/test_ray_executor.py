"""`--executor ray`: the embedded model on Ray workers answers exactly as it does in-process, a seeded run gives the
local executor's result, the driver's call cache is shared (a warm cache sends nothing to the workers), a resumed
run goes back to Ray, and a missing Ray or a dead address is one clear line.

A local Ray cluster (2 CPUs, no dashboard, an 80 MiB object store) is started once for the module.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import prompthone as ph
import prompthone.api as api
from prompthone.cli import app
from prompthone.errors import BackendError, ConfigError
from prompthone.models.base import GenerationRequest, Message, ScoringRequest
from prompthone.models.ray_executor import RayExecutor, RayModel, _check_reachable, resolve_executor
from prompthone.store.db import RunStore

CLUSTER_CPUS = 2
TASK = ["--task", "gen:sentiment_templates", "--limit", "24"]
TINY_APE = ["--method", "ape", "--budget", "24", "-o", "num_subsamples=1", "-o", "num_prompts_per_subsample=3",
            "-o", "num_demos=2", "-o", "eval_samples=6", "-o", "mc_rounds=0", "-o", "gen_max_tokens=30"]
SAME = ("best_prompt", "seed_prompt", "best_dev_score", "seed_dev_score", "test_score", "seed_test_score",
        "best_candidate_id", "spend", "final_spend", "steps", "n_candidates", "stopped_reason")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster for this module; its address (what `ray start --head` would print) is yielded."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("llama_cpp")
    before = dict(os.environ)
    context = ray.init(address="local", num_cpus=CLUSTER_CPUS, include_dashboard=False,
                       object_store_memory=80 * 1024 * 1024, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        for key in [k for k in os.environ if k not in before]:  # ray.init sets RAY_AUTH_MODE, PYTHONBREAKPOINT, ...
            del os.environ[key]
        os.environ.update(before)


@pytest.fixture
def remote(ray_cluster: str) -> Iterator[RayModel]:
    """The embedded model on two Ray workers (stopped after the test, so the cluster's CPUs are free again)."""
    with RayModel("local", RayExecutor(workers=CLUSTER_CPUS)) as model:
        yield model


def _cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prompthone.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache"), **env},
                          timeout=600, check=False)


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _rows(cache: Path) -> dict[str, tuple[str, str]]:
    """Every cached call: key → (model id, result)."""
    with sqlite3.connect(cache) as db:
        return {key: (model, result) for key, model, result in db.execute("SELECT key, model, result FROM calls")}


def _calls(model: RayModel) -> int:
    return sum(w["calls"] for w in model.worker_stats())


# -- no cluster needed -----------------------------------------------------------------------------------------------
def test_executor_settings_resolve_and_round_trip_through_a_run_record() -> None:
    assert resolve_executor(None) is None and resolve_executor("local") is None
    assert resolve_executor("ray") == RayExecutor()
    given = RayExecutor(address="auto", workers=3, cpus_per_worker=2)
    assert resolve_executor(given) is given
    assert RayExecutor.from_record(given.record()) == given
    assert RayExecutor(address="ray://user:secret@head:10001").record()["address"] is None  # never written down
    with pytest.raises(ConfigError, match="unknown executor"):
        resolve_executor("dask")
    with pytest.raises(ConfigError, match="≥ 1"):
        RayExecutor(workers=0)


def test_white_box_models_stay_in_process() -> None:
    with pytest.raises(ConfigError, match=r"white-box.*--executor local"):
        RayModel("local-torch")


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'prompthone\[ray\]'"):
        api.executor_model("local", "ray")  # the one place that chooses local or Ray
    result = CliRunner().invoke(app, ["eval", "--task", "gen:arithmetic", "--executor", "ray",
                                      "--cache", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pip install 'prompthone[ray]'" in result.output.replace("\n", "")
    misplaced = CliRunner().invoke(app, ["eval", "--task", "gen:arithmetic", "--ray-workers", "2"])
    assert misplaced.exit_code == 2 and "--executor ray" in misplaced.output


def test_a_dead_ray_address_is_one_line_and_exit_2(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port that had a listener a moment ago and has none now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = _cli(["eval", *TASK, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = proc.stderr.replace("\n", "")
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in message and "ray start --head" in message
    with pytest.raises(ConfigError, match="is not host:port"):  # e.g. from $RAY_ADDRESS
        _check_reachable("head-without-port")


# -- on the cluster -------------------------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.ray
def test_ray_workers_answer_exactly_as_the_local_backend(remote: RayModel, embedded_model: Any) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=24)
    labels = tuple(task.labels or ())
    scoring = [ScoringRequest((Message("system", system), Message("user", ex.input)), labels, prefill=prefill)
               for system, prefill in (("Classify the sentiment.", ""), ("Answer in one word.", "The answer is:"))
               for ex in task.dev[:6]]
    generation = [GenerationRequest((Message("user", f"Say something about: {ex.input}"),), max_tokens=16,
                                    temperature=temperature, seed=seed)
                  for ex, (temperature, seed) in zip(task.dev, [(0.0, None)] * 3 + [(0.9, 7), (0.9, 8)], strict=False)]
    assert remote.id == embedded_model.id  # so the call cache keys are the local run's
    assert remote.capabilities.score and remote.capabilities.max_concurrency == CLUSTER_CPUS
    assert not remote.capabilities.white_box

    scored = list(remote.score(scoring))
    assert sorted(i for i, _ in scored) == list(range(len(scoring)))  # each index once
    assert dict(scored) == dict(embedded_model.score(scoring))  # bit for bit
    generated = list(remote.generate(generation))
    assert sorted(i for i, _ in generated) == list(range(len(generation)))
    assert dict(generated) == dict(embedded_model.generate(generation))

    workers = remote.worker_stats()
    assert len({w["pid"] for w in workers}) == CLUSTER_CPUS and all(w["calls"] > 0 for w in workers)  # shared out
    assert sum(w["calls"] for w in workers) == len(scoring) + len(generation)
    assert remote.stats is None  # llama.cpp counts no server faults: the run reports none, as locally

    too_long = GenerationRequest((Message("user", "hi " * 5000),), max_tokens=8)  # beyond the 4096-token context
    arrived: list[int] = []
    with pytest.raises(BackendError, match="context window"):
        for i, _ in remote.generate([generation[0], too_long, generation[1]]):
            arrived.append(i)
    assert sorted(arrived) == [0, 2]  # the other pieces' results still arrive (so the cache keeps them)


@pytest.mark.e2e
@pytest.mark.ray
def test_the_call_cache_is_shared_and_a_warm_cache_sends_nothing_to_the_workers(
        remote: RayModel, embedded_model: Any, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=24)
    on_ray = ph.evaluate(task, model=remote, split="dev", cache=tmp_path / "ray.sqlite")
    assert _calls(remote) == on_ray.n  # cold: every example reached a worker
    again = ph.evaluate(task, model=remote, split="dev", cache=tmp_path / "ray.sqlite")
    assert _calls(remote) == on_ray.n  # warm: none did
    assert again.score == on_ray.score
    local = ph.evaluate(task, model=embedded_model, split="dev", cache=tmp_path / "local.sqlite")
    assert local.score == on_ray.score
    assert _rows(tmp_path / "ray.sqlite") == _rows(tmp_path / "local.sqlite")  # same keys, same results


@pytest.mark.e2e
@pytest.mark.ray
def test_optimize_on_ray_gives_the_local_result_and_fills_the_same_cache(ray_cluster: str, tmp_path: Path) -> None:
    base = ["optimize", *TASK, *TINY_APE, "--seed", "2", "--quiet", "--json"]
    local = _json(_cli([*base, "--runs-dir", "local", "--cache", "local.sqlite", "--executor", "local"], tmp_path))
    # a fresh cluster of its own (the default), as a user without a cluster gets it
    on_ray = _json(_cli([*base, "--runs-dir", "ray", "--cache", "ray.sqlite", "--executor", "ray",
                         "--ray-workers", "2"], tmp_path, RAY_ADDRESS=""))
    assert {k: on_ray[k] for k in SAME} == {k: local[k] for k in SAME}
    assert on_ray["spend"]["new_calls"] == on_ray["spend"]["calls"] > 0
    assert _rows(tmp_path / "ray.sqlite") == _rows(tmp_path / "local.sqlite")
    config = json.loads((tmp_path / on_ray["run_dir"] / "config.json").read_text())
    assert config["provenance"]["executor"] == {"kind": "ray", "address": None, "workers": 2, "cpus_per_worker": 1.0}
    assert config["provenance"]["model"] == "local"

    # the local run's cache, on this module's running cluster: everything is answered on the driver
    warm = _json(_cli([*base, "--runs-dir", "warm", "--cache", "local.sqlite", "--executor", "ray",
                       "--ray-address", ray_cluster], tmp_path))
    assert {k: warm[k] for k in SAME if "spend" not in k} == {k: local[k] for k in SAME if "spend" not in k}
    assert warm["spend"]["new_calls"] == 0 and warm["final_spend"]["new_calls"] == 0


@pytest.mark.e2e
@pytest.mark.ray
def test_a_stopped_ray_run_resumes_on_ray(ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[RayModel] = []

    class Counted(RayModel):  # the real RayModel, remembering what its workers did when it is closed
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.calls = 0
            started.append(self)

        def close(self) -> None:
            self.calls = sum(w["calls"] for w in self.worker_stats())
            super().close()

    monkeypatch.setattr(api, "RayModel", Counted)

    def stop_after_first_step(record: Any) -> None:
        if record.step == 1:
            raise RuntimeError("stopped")

    task = ph.load_task("gen:sentiment_templates", limit=24, seed=4)
    options = {"steps": 3, "num_generated_instructions": 1, "score_examples": 6, "meta_max_tokens": 32}
    kwargs: dict[str, Any] = {"method": "opro", "budget": 40, "seed": 4, "options": options, "progress": False,
                              "run_dir": tmp_path / "runs", "cache": tmp_path / "c.sqlite"}
    with pytest.raises(RuntimeError, match="stopped"):
        ph.optimize(task, executor=RayExecutor(workers=CLUSTER_CPUS), callbacks=[stop_after_first_step], **kwargs)
    assert len(started) == 1 and started[0].calls > 0 and started[0].worker_stats() == []  # stopped with the run
    with RunStore(tmp_path / "runs" / "prompthone.sqlite") as db:
        run_id = db.list_runs()[0].id
    resumed = ph.resume(run_id, run_dir=tmp_path / "runs", progress=False)  # the executor recorded in the run
    assert len(started) == 2 and started[1].executor == RayExecutor(workers=CLUSTER_CPUS) and started[1].calls > 0
    assert resumed.steps == 3 and resumed.stopped_reason == "finished"
    # the run never stopped, locally, on the same cache: the same result, and no call the resumed run did not make
    whole = ph.optimize(task, executor="local", **{**kwargs, "run_dir": tmp_path / "whole"})
    assert {k: getattr(resumed, k) for k in SAME if "spend" not in k} == \
        {k: getattr(whole, k) for k in SAME if "spend" not in k}
    assert whole.spend["new_calls"] == whole.final_spend["new_calls"] == 0
