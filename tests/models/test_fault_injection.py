"""Fault injection between prompthone and a real server: a run through a proxy that fails ~40% of requests (429s with
and without Retry-After, 500/503, resets, hangs, malformed and empty replies, truncated bodies) ends exactly as a
clean run; every fault is counted, by the client as by the proxy, and shown in the run summary; a server that dies
for good stops the run with one clear line, and the stored run resumes to the clean result once it is back.

The upstream is `llama_cpp.server` on the embedded SmolLM2 (see test_openai_server.py); the proxy is
`tests/fakes/fault_proxy.py`. The run is MIPRO with one instruction (no generation at all: the search is over
bootstrapped demo sets, every call is a temperature-0 label score), so its result is a function of the label scores
alone, which the server gives the same whatever the order or the retries of the requests.

The client's backoff is not a command-line or model-spec option, so the CLI runs in a wrapper that sets the client
settings (`CLIENT`) as `OpenAICompatModel.from_spec` defaults (`_LAUNCH`). With a fault on 40% of requests and 12
retries (13 attempts), one call fails for good with probability 0.4^13 ≈ 6.7e-6, about 3e-4 over the run's ~40 calls
(and the proxy's RNG is seeded, so a given run sees the same sequence of faults every time). Label scores through
`llama_cpp.server` were bit-identical in every clean and faulty run tried (the cached log-probabilities, not only the
argmax labels), so the comparison is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.fake_openai_server import FakeOpenAIServer
from tests.fakes.fault_proxy import CLIENT_STAT, FAULT_KINDS, FaultProxy
from tests.models.conftest import SERVER_ALIAS

from prompthone.errors import BackendError
from prompthone.models.base import Message, ScoringRequest
from prompthone.models.openai_compat import OpenAICompatModel
from prompthone.progress import fault_summary
from prompthone.report.data import RunData
from prompthone.report.summary import spend
from prompthone.run.faults import BackendFaults
from prompthone.store.db import RunStore

ALIAS = SERVER_ALIAS
#: MIPRO over 4 bootstrapped demo sets with the seed instruction only: ~39 label-scoring calls, best ≠ seed (seed 7)
ARGS = ["--task", "gen:sentiment_templates", "--limit", "24", "--method", "mipro", "-o", "num_instruction_candidates=1",
        "-o", "num_demo_sets=4", "-o", "max_bootstrapped_demos=2", "-o", "max_labeled_demos=2", "-o", "num_trials=4",
        "-o", "minibatch_size=8", "--budget", "150", "--seed", "7"]
#: short timeout (a hang costs this much), many quick retries; 2 in flight keep honest replies near 1 s even on a busy
#: machine (one that is slower anyway is a client timeout the proxy counts as `client_gone`, and is retried)
CLIENT = {"timeout": 6.0, "max_retries": 12, "backoff_base": 0.01, "backoff_max": 0.05, "max_concurrency": 2}
RATES = dict.fromkeys(FAULT_KINDS, 0.04)  # 40% of requests get a fault
FAULT_SEED = 7  # with this seed every kind occurs within the run's first 24 passes (checked below)
SAME = ("best_prompt", "seed_prompt", "best_dev_score", "seed_dev_score", "test_score", "seed_test_score",
        "best_candidate_id", "steps", "n_candidates", "stopped_reason", "options")

# The CLI with the client settings above as `from_spec` defaults (keyword options win, as in `from_spec` itself).
_LAUNCH = """
import json, os, sys
from prompthone.models.openai_compat import OpenAICompatModel
settings = json.loads(os.environ["FAULT_TEST_CLIENT"])
plain = OpenAICompatModel.from_spec.__func__
OpenAICompatModel.from_spec = classmethod(lambda cls, spec, **kw: plain(cls, spec, **{**settings, **kw}))
from prompthone.cli import main
sys.argv[0] = "prompthone"
main()
"""


@dataclass
class Run:
    """One `prompthone optimize` process and the run directory it exported."""

    proc: subprocess.CompletedProcess[str]
    runs: Path

    @property
    def run_dir(self) -> Path:
        (found,) = [p for p in self.runs.iterdir() if p.is_dir()]
        return found

    def result(self) -> dict[str, Any]:
        assert self.proc.returncode == 0, self.proc.stderr
        data: dict[str, Any] = json.loads((self.run_dir / "result.json").read_text())
        return data

    def records(self) -> dict[str, Any]:
        """What must not depend on faults or stops: the result's prompts and scores, the calls and tokens the search
        counted, every candidate, every prediction, each step's best and frontier."""
        result = self.result()
        return {"result": {k: result[k] for k in SAME},
                "spend": {k: result["spend"][k] for k in ("calls", "tokens", "by_role")},
                "candidates": (self.run_dir / "candidates.jsonl").read_text().splitlines(),
                "evaluations": (self.run_dir / "evaluations.jsonl").read_text().splitlines(),
                "steps": [{k: v for k, v in json.loads(line).items() if k in ("step", "best_id", "best_score",
                                                                             "frontier")}
                          for line in (self.run_dir / "steps.jsonl").read_text().splitlines()]}


def _optimize(base_url: str, root: Path, *args: str) -> Run:
    """`prompthone optimize` on `base_url` (the model named, so nothing asks `/models`), its own runs and cache."""
    env = {**os.environ, "FAULT_TEST_CLIENT": json.dumps(CLIENT), "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}
    runs = root / "runs"
    model = [] if "--resume" in args else [*ARGS, "--model", f"openai:{base_url}#{ALIAS}", "--cache",
                                           str(root / "calls.sqlite")]
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, "optimize", *model, *args, "--runs-dir", str(runs),
                           "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    return Run(proc, runs)


@pytest.fixture(scope="module")
def upstream(llama_server: str) -> str:
    """The real server behind the proxy (conftest's llama_cpp.server on the embedded model)."""
    return llama_server


@pytest.fixture(scope="module")
def clean(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The run straight against the upstream: what every faulty run must end as."""
    run = _optimize(upstream, tmp_path_factory.mktemp("clean"))
    result = run.result()
    assert result["best_candidate_id"] != 0 and result["best_dev_score"] > result["seed_dev_score"], \
        "the clean run must find a prompt other than the seed, or an equal result proves little"
    assert result["backend"]["task"]["failures"] == 0
    return run


@pytest.mark.server
@pytest.mark.e2e
def test_a_run_through_a_faulty_proxy_ends_as_the_clean_run_and_counts_every_fault(
        upstream: str, clean: Run, tmp_path: Path) -> None:
    with FaultProxy(upstream, RATES, seed=FAULT_SEED) as proxy:
        faulty = _optimize(proxy.base_url, tmp_path)
        injected = proxy.counts()
        expected = proxy.expected_client_stats()
    assert faulty.proc.returncode == 0, faulty.proc.stderr

    assert set(FAULT_KINDS) <= set(injected), f"seed {FAULT_SEED} no longer injects every kind: {injected}"
    n_faults = sum(injected[k] for k in FAULT_KINDS)
    assert n_faults >= 0.3 * injected["requests"], injected
    assert faulty.records() == clean.records()
    assert faulty.result()["spend"] == clean.result()["spend"]  # the same calls, paid and cached alike

    counted = faulty.result()["backend"]["task"]
    # a pass-through whose client gave up before the upstream answered is a timeout the proxy did not inject
    expected["timeouts"] = expected.get("timeouts", 0) + injected["client_gone"]
    assert {k: counted.get(k, 0) for k in expected} == expected
    assert counted["requests"] == injected["requests"]
    assert counted["retries"] == n_faults + injected["client_gone"] and counted["failures"] == 0
    assert set(counted) - {"requests", "retries", "failures", "backoff_ms"} == set(expected)

    summary = next(line for line in faulty.proc.stdout.splitlines() if line.startswith("server faults:"))
    assert summary.startswith(f"server faults: {counted['retries']} retried (")
    for kind, n in (("429", counted["http_429"]), ("500", counted["http_500"]), ("503", counted["http_503"]),
                    ("timeouts", counted["timeouts"]), ("connection errors", counted["connection_errors"]),
                    ("malformed replies", counted["malformed"])):
        assert f"{kind}×{n}" in summary
    assert summary.endswith(f"0 failed, in {counted['requests']} requests")
    with RunStore(faulty.runs / "prompthone.sqlite") as store:
        (stored,) = store.list_runs()
        assert stored.status == "finished" and stored.result is not None
        assert stored.result["backend"] == faulty.result()["backend"]
        assert store.steps(stored.id)[-1]["backend"]["task"]["requests"] > 0
    shown = spend(RunData.from_run_dir(faulty.run_dir)).faults  # the report's spend panel
    assert shown["task"]["retries"] == counted["retries"] and f"429×{counted['http_429']}" in shown["task"]["kinds"]


@pytest.mark.server
@pytest.mark.e2e
def test_a_dead_server_stops_the_run_with_one_line_and_it_resumes_to_the_clean_result(
        upstream: str, clean: Run, tmp_path: Path) -> None:
    steps = [json.loads(line) for line in (clean.run_dir / "steps.jsonl").read_text().splitlines()]
    # the proxy dies inside the first step after the first that asks the server anything new
    first = int(steps[0]["spend"]["new_calls"])
    die_after = first + 1
    assert any(int(s["spend"]["new_calls"]) > first for s in steps), "no later step asks the server anything"
    with FaultProxy(upstream, {}, die_after=die_after) as proxy:
        dead = _optimize(proxy.base_url, tmp_path)
        assert dead.proc.returncode == 2
        assert "Traceback" not in dead.proc.stderr
        (error,) = [line for line in dead.proc.stderr.splitlines() if line.startswith("error:")]
        with RunStore(dead.runs / "prompthone.sqlite") as store:
            (run,) = store.list_runs()
            assert run.status == "failed" and run.result is not None
            assert run.result["stopped_reason"] == "backend_error"
            finished = len(store.steps(run.id))
            assert store.last_checkpoint(run.id) is not None and 1 <= finished < len(steps)
        assert f"run {run.id} stopped during step {finished + 1}" in error
        assert f"{proxy.base_url}/chat/completions failed after {CLIENT['max_retries'] + 1} attempt" in error
        assert "last error: connection error" in error
        assert f"prompthone optimize --resume {run.id}" in error
        died = proxy.counts()["dead"]

        proxy.revive()
        resumed = _optimize(proxy.base_url, tmp_path, "--resume", run.id)
        assert resumed.proc.returncode == 0, resumed.proc.stderr
    assert resumed.records() == clean.records()
    counted = resumed.result()["backend"]["task"]  # the stopped process's faults are carried into the resumed run
    assert CLIENT["max_retries"] + 1 <= counted["connection_errors"] <= died
    assert counted["failures"] >= 1
    with RunStore(resumed.runs / "prompthone.sqlite") as store:
        assert store.get_run(run.id).status == "finished"


def test_each_fault_kind_reaches_the_client_as_its_counter() -> None:
    """The proxy alone, in front of the fixed-reply fake: one request per kind, each counted where CLIENT_STAT says."""
    upstream = FakeOpenAIServer().start()
    request = ScoringRequest((Message("user", "Great?"),), ("positive", "negative"))
    try:
        for kind in FAULT_KINDS:
            with FaultProxy(upstream.base_url, {kind: 1.0}, hang_s=5.0) as proxy, \
                    OpenAICompatModel(proxy.base_url, "fake-model", timeout=0.3, max_retries=0,
                                      max_concurrency=1) as model:
                with pytest.raises(BackendError, match="failed after 1 attempt"):
                    list(model.score([request]))
                assert proxy.counts() == {"requests": 1, "passed": 0, "client_gone": 0, kind: 1}
                assert model.stats[CLIENT_STAT[kind]] == 1, (kind, model.stats)
        with FaultProxy(upstream.base_url, {}) as proxy, \
                OpenAICompatModel(proxy.base_url, "fake-model", timeout=1.0, max_retries=0) as model:
            [(_, scores)] = list(model.score([request]))
            assert scores.logprobs[0] > scores.logprobs[1]  # passed through: the fake's own reply
            proxy.kill()
            with pytest.raises(BackendError, match="connection error"):
                list(model.score([request]))
            assert proxy.counts() == {"requests": 2, "passed": 1, "client_gone": 0, "dead": 1}
    finally:
        upstream.stop()


def test_fault_counts_are_per_run_and_said_in_one_line() -> None:
    class Server:
        def __init__(self) -> None:
            self.stats = {"requests": 40, "retries": 2, "failures": 0, "http_429": 2}  # counted before this run

    task, meta = Server(), Server()
    faults = BackendFaults(task, task)  # type: ignore[arg-type]
    assert list(faults.models) == ["task"]  # one backend in two roles is counted once
    task.stats = {**task.stats, "requests": 52, "retries": 9, "http_429": 4, "http_503": 1, "timeouts": 2,
                  "connection_errors": 2, "backoff_ms": 310}
    faults.carried = {"task": {"requests": 13, "retries": 12, "failures": 1, "connection_errors": 13}}
    counts = faults.counts()
    assert counts == {"task": {"requests": 25, "retries": 19, "failures": 1, "backoff_ms": 310,
                               "connection_errors": 15, "http_429": 2, "http_503": 1, "timeouts": 2}}
    assert fault_summary(counts) == ("server faults: 19 retried (429×2, 503×1, timeouts×2, connection errors×15), "
                                     "1 failed, in 25 requests")
    both = BackendFaults(task, meta).counts()  # type: ignore[arg-type]
    assert set(both) == {"task", "meta"}
    assert fault_summary(both) == ("server faults (task model): none in 0 requests; "
                                   "server faults (meta model): none in 0 requests")
    assert fault_summary({}) is None
