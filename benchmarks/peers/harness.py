"""Run every system on every task, seed and budget level through counting proxies; score every final prompt alike.

The order of work and why:
1. One OpenAI-compatible server for the task model (an embedded GGUF on `llama_cpp.server`, or `--server-url`), one
   counting proxy in front of it. In a regime with a separate proposer (`regimes.py`), a second server and proxy
   for the proposer. Every system, prompthone included, reaches each model only through its own proxy account:
   the task model's account is the budget; the proposer's is counted apart (capped only as a runaway guard).
2. Per task and seed, one split (prompthone's loader, seeded by the seed, or one split for all seeds with
   `data_seed`) shared by all systems; runners get train and dev only.
3. Per system: a job file, the runner in its own environment, a wall-clock limit; the proxy's ledgers are the count.
4. The final prompt (instruction + demos, rendered with the task's fixed output-format line) is scored on the test
   split by prompthone's evaluator against the task server directly (not through the proxy, not charged to anyone),
   twice: label log-probabilities on classification tasks (generate-and-parse otherwise), and text-scored
   (generate up to the completion cap, parse the answer as the task's metric does), the way the peers see answers;
   example by example, so the server's prompt cache serves each example's second request. Identical prompts are
   scored once.
5. Each finished run is appended to `results.jsonl` at once; rerunning with the same `--out` skips what is there, so
   a crash or Ctrl-C loses at most the run in progress; results made under other settings (split, budget, models)
   are never resumed into (`_check_resumable`). Runs `carried` in from a committed raw file (an earlier machine's or
   session's progress, `__main__`) count as done the same way, and `on_record` hears of every run as it lands (the
   full mode rewrites the raw file then), so a run of many hours can be spread over sessions that each keep only
   what is committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.outcomes import encode
from benchmarks.peers.envs import ensure_env, harness_python
from benchmarks.peers.job import Job, Pair, PeerResult
from benchmarks.peers.proxy import CountingProxy, Ledger
from benchmarks.peers.regimes import PROPOSER_CONTEXT, serve_embedded
from benchmarks.peers.systems import SEED, SYSTEMS, Sizing
from benchmarks.results_md import source_commit
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import EvalResult, Evaluator, ExampleResult
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.openai_compat import OpenAICompatModel
from prompthone.prompts.calibration import Calibration
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example, Task
from prompthone.tasks.registry import load_task

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER_KEY = "sk-prompthone-bench-local"  # runners talk to the local proxy; a real key stays in the harness


@dataclass
class Settings:
    """Everything that defines a benchmark run; written to `settings.json` beside the results."""

    tasks: list[str]
    seeds: list[int]
    budget: int  # calls per run at the full level
    levels: list[float]  # fractions of `budget`; each is a separate run (the score-vs-calls curve)
    systems: list[str]
    out: Path
    max_tokens: int = 256  # completion-token cap per call, enforced at the proxy for everyone
    limit: int | None = 150  # examples per task before the split (None: all)
    #: the split's seed; None: each seed its own split. A fixed split puts every seed's runs on the same test
    #: examples, so systems can be compared example by example (paired) over all their seeds
    data_seed: int | None = None
    dev_size: int | None = None  # dev and test sizes (None: the loader's 40/20/40 fractions; train keeps the rest)
    test_size: int | None = None
    server_url: str | None = None  # None: serve the embedded model locally
    server_model: str | None = None
    runner_timeout_s: float = 1800.0
    quick: bool = False
    regime: str = "smollm"
    task_model: str = "local"  # the embedded model served as task model (unless `server_url`)
    proposer_model: str | None = None  # an embedded model served as every system's proposer; None: the task model
    proposer_budget: int | None = None  # proposer calls per run, a runaway guard (None: the run's budget)

    @property
    def separate_proposer(self) -> bool:
        return self.proposer_model is not None

    def budgets(self) -> list[int]:
        return sorted({max(1, round(self.budget * level)) for level in self.levels})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data

    def refuse_mixing(self, earlier: dict[str, Any], holder: Path, adding: str, remedy: str) -> None:
        """Stop (SystemExit) when `earlier` (the settings of results at `holder` that this run would add to)
        differs from these on a field that decides a run's outcome (models, budget, split, caps), naming each such
        field: one table must not mix the two. `adding` says what the run would do, `remedy` what to do instead."""
        now = self.to_dict()
        differ = [f"{name}: {earlier.get(name)!r} then, {now[name]!r} now" for name in OUTCOME_FIELDS
                  if earlier.get(name, now[name]) != now[name]]
        if differ:
            raise SystemExit(f"{holder} holds results made with other settings ({'; '.join(differ)}); {adding} "
                             f"would mix them. {remedy}")


#: the settings a finished run's record depends on (tasks, seeds, systems and levels only choose which runs exist)
OUTCOME_FIELDS = ("budget", "max_tokens", "limit", "data_seed", "dev_size", "test_size", "server_url", "server_model",
                  "task_model", "proposer_model", "proposer_budget", "quick")


@dataclass
class Record:
    """One system's run on one task, seed and budget: what it spent and how its final prompt scores on test."""

    task: str
    seed: int
    budget: int
    system: str
    status: str
    test_score: float | None
    calls: int = 0
    refused: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    internal_score: float | None = None
    detail: str = ""
    version: str = ""
    instruction: str = ""
    n_demos: int = 0
    scoring_mode: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    test_score_text: float | None = None  # text-scored: generated up to the completion cap, answer parsed
    outcomes: str | list[float] | None = None  # per test example, as `test_score` reads them (`outcomes.encode`)
    outcomes_text: str | list[float] | None = None  # per test example, text-scored
    proposer_calls: int = 0  # calls on the proposer's own account (0 when the task model proposes)
    proposer_refused: int = 0
    proposer_tokens: int = 0

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.task, self.seed, self.budget, self.system)


@dataclass
class TaskInfo:
    """Facts about a task's split that the report needs (the chance level)."""

    task: str
    seed: int
    labels: list[str] | None
    majority: float | None  # accuracy of always answering the most frequent test label
    sizes: dict[str, int]


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    return [Record(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Upstreams:
    """Where runners reach the models (the counting proxies) and where the scorer reaches the task model."""

    server_url: str  # the task model's server itself (the scorer's, never charged)
    model: str
    proxy: CountingProxy
    proxy_url: str
    proposer_model: str | None = None
    proposer_proxy: CountingProxy | None = None
    proposer_proxy_url: str | None = None


def run_suite(settings: Settings, carried: Iterable[Record] = (),
              on_record: Callable[[list[Record], list[TaskInfo]], None] | None = None,
              ) -> tuple[list[Record], list[TaskInfo]]:
    """Run what `settings` asks for that is not done yet; returns every record in `--out` and the task facts.

    `carried`: records made elsewhere under the same settings (the caller checked), added to `results.jsonl` where
    absent, so they are skipped here and kept; `on_record(records, infos)` is called after each new run.
    """
    settings.out = settings.out.resolve()  # runners run in their own directories: every path they get is absolute
    settings.out.mkdir(parents=True, exist_ok=True)
    _check_resumable(settings)
    (settings.out / "settings.json").write_text(json.dumps(settings.to_dict(), indent=1), encoding="utf-8")
    results_path = settings.out / "results.jsonl"
    records = read_records(results_path)
    done = {r.key for r in records}
    adopted = [r for r in carried if r.key not in done]
    if adopted:
        _append(results_path, adopted)
        records += adopted
        done |= {r.key for r in adopted}
        print(f"[peers] carried in {len(adopted)} finished runs from the raw file", flush=True)
    infos: list[TaskInfo] = []
    pythons = {name: _python_for(name) for name in settings.systems if name != SEED}
    with _upstreams(settings) as up, OpenAICompatModel(up.server_url, up.model, timeout=900.0,
                                                      max_concurrency=1) as scorer:
        score_cache = CallCache(settings.out / "scoring.sqlite")
        for spec in settings.tasks:
            for seed in settings.seeds:
                task = load_task(spec, seed=seed if settings.data_seed is None else settings.data_seed,
                                 limit=settings.limit, dev_size=settings.dev_size, test_size=settings.test_size)
                infos.append(_task_info(spec, seed, task))
                for budget in settings.budgets():
                    for name in settings.systems:
                        spent = 0 if name == SEED else budget
                        if (spec, seed, spent, name) in done:
                            continue
                        print(f"[peers] {spec} seed {seed} budget {spent}: {name}", flush=True)
                        if name == SEED:
                            record = _seed_record(settings, spec, seed, task, scorer, score_cache)
                        else:
                            record = _run_system(settings, name, spec, seed, budget, task, up, pythons[name],
                                                 scorer, score_cache)
                        _print_record(record)
                        _append(results_path, [record])
                        records.append(record)
                        done.add(record.key)
                        if on_record is not None:
                            on_record(records, infos)
    (settings.out / "tasks.json").write_text(json.dumps([asdict(i) for i in infos], indent=1), encoding="utf-8")
    return records, infos


def _append(path: Path, records: list[Record]) -> None:
    with path.open("a", encoding="utf-8") as sink:
        sink.writelines(json.dumps(asdict(record), ensure_ascii=False) + "\n" for record in records)


def _check_resumable(settings: Settings) -> None:
    """Refuse to add runs to `--out` results made under other settings (a different split or budget would be
    mixed into one table silently); say which settings differ and what to do."""
    path = settings.out / "settings.json"
    if not path.exists() or not (settings.out / "results.jsonl").exists():
        return
    settings.refuse_mixing(json.loads(path.read_text(encoding="utf-8")), settings.out, "resuming",
                           "Use another --out, or remove that directory to start over.")


def _python_for(name: str) -> Path:
    system = SYSTEMS[name]
    return ensure_env(system.env) if system.env else harness_python()


def _upstream_key() -> str | None:
    return os.environ.get("PROMPTHONE_API_KEY") or os.environ.get("OPENAI_API_KEY")


@contextlib.contextmanager
def _upstreams(settings: Settings) -> Iterator[Upstreams]:
    """The task model's server and proxy, and the proposer's when the regime has a separate one."""
    with contextlib.ExitStack() as stack:
        server_url, model = stack.enter_context(_server(settings))
        proxy = CountingProxy(server_url, api_key=_upstream_key())
        up = Upstreams(server_url, model, proxy, stack.enter_context(proxy.serve()))
        if settings.proposer_model is not None:
            proposer_url, up.proposer_model = stack.enter_context(serve_embedded(
                settings.proposer_model, settings.out / "proposer-server.log", n_ctx=PROPOSER_CONTEXT))
            up.proposer_proxy = CountingProxy(proposer_url)
            up.proposer_proxy_url = stack.enter_context(up.proposer_proxy.serve())
        yield up


@contextlib.contextmanager
def _server(settings: Settings) -> Iterator[tuple[str, str]]:
    """The task model's upstream: `--server-url` as given, or the regime's embedded model served for this run."""
    if settings.server_url:
        with OpenAICompatModel(settings.server_url, settings.server_model, api_key_env="OPENAI_API_KEY") as probe:
            yield settings.server_url.rstrip("/"), probe.model
        return
    with serve_embedded(settings.task_model, settings.out / "server.log") as (url, name):
        yield url, name


def _task_info(spec: str, seed: int, task: Task) -> TaskInfo:
    majority = None
    if task.labels and task.test:
        counts = [sum(e.target == label for e in task.test) for label in task.labels]
        majority = max(counts) / len(task.test)
    return TaskInfo(spec, seed, list(task.labels) if task.labels else None, majority,
                    {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)})


@dataclass(frozen=True)
class TestScores:
    """A final prompt's test scores: prompthone's evaluator as it scores by default, and text-scored."""

    score: float
    mode: str  # "labels" (log-probabilities) or "generate"
    text: float  # generated up to the completion cap, the answer parsed as the task's metric does
    outcomes: list[float]  # per test example, for `score` and for `text`: what paired comparisons read
    outcomes_text: list[float]

    def fields(self) -> dict[str, Any]:
        """The `Record` fields these scores fill, per-example outcomes encoded compactly."""
        return {"test_score": self.score, "scoring_mode": self.mode, "test_score_text": self.text,
                "outcomes": encode(self.outcomes), "outcomes_text": encode(self.outcomes_text)}


def score_test(task: Task, prompt: Prompt, scorer: Any, cache: CallCache, max_tokens: int) -> TestScores:
    """Score `prompt` on the test split both ways (not metered: the scorer is nobody's budget).

    Example by example, both readings in turn: the two requests of an example carry the same messages, so the
    server's prompt cache (llama.cpp keeps the last prompt's tokens) serves the second one whole, where two passes
    over the split would evaluate each example's tokens twice. Each reading's aggregate is then computed over all
    its rows, as one pass would.
    """
    model = MeteredModel(scorer, meter=BudgetMeter(None), cache=cache, role="final")
    default = Evaluator(task, model, max_tokens=max_tokens)
    if default.mode == "generate":  # the default reading already is the text one: the same calls, made once
        first = default.evaluate(prompt, task.test)
        return TestScores(first.score, default.mode, first.score, first.per_example(), first.per_example())
    text = Evaluator(task, model, mode="generate", max_tokens=max_tokens)
    rows: list[ExampleResult] = []
    text_rows: list[ExampleResult] = []
    for example in task.test:
        rows += default.evaluate(prompt, [example]).examples
        text_rows += text.evaluate(prompt, [example]).examples
    first = default.rescore(EvalResult(0.0, tuple(rows)), prompt.calibration)
    second = text.rescore(EvalResult(0.0, tuple(text_rows)), None)
    return TestScores(first.score, default.mode, second.score, first.per_example(), second.per_example())


def _seed_record(settings: Settings, spec: str, seed: int, task: Task, scorer: OpenAICompatModel,
                 cache: CallCache) -> Record:
    scores = score_test(task, Prompt(task.instruction, output_format=task.output_format), scorer, cache,
                        settings.max_tokens)
    return Record(spec, seed, 0, SEED, "ok", instruction=task.instruction, **scores.fields())


def _run_system(settings: Settings, name: str, spec: str, seed: int, budget: int, task: Task, up: Upstreams,
                python: Path, scorer: OpenAICompatModel, score_cache: CallCache) -> Record:
    system = SYSTEMS[name]
    run_id = f"{slug(spec)}-s{seed}-b{budget}-{name}-{uuid.uuid4().hex[:6]}"
    run_dir = settings.out / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    job = _job(settings, name, spec, seed, budget, task, up, run_id, run_dir)
    job_path = run_dir / "job.json"
    job.write(job_path)
    started = time.monotonic()
    status_note = _launch(python, system.runner_path, job_path, run_dir, settings.runner_timeout_s)
    wall = time.monotonic() - started
    ledger = up.proxy.ledger(run_id)
    proposer = up.proposer_proxy.ledger(run_id) if up.proposer_proxy is not None else None
    result = PeerResult.read(job.result_path) if job.result_path.exists() else \
        PeerResult("failed", task.instruction, detail=status_note or "the runner wrote no result")
    status = result.status
    if status == "ok" and (ledger.refused or (proposer is not None and proposer.refused)):
        status = "cut_off"  # the runner recovered, but the proxy refused calls: say so
    prompt = Prompt(result.instruction or task.instruction, output_format=task.output_format,
                    demos=tuple(Example(d.input, d.target) for d in result.demos),
                    calibration=Calibration.from_dict(result.calibration) if result.calibration else None)
    scores = score_test(task, prompt, scorer, score_cache, settings.max_tokens)
    detail = "; ".join(filter(None, [status_note, result.detail]))
    return Record(spec, seed, budget, name, status, calls=ledger.calls, refused=ledger.refused,
                  prompt_tokens=ledger.prompt_tokens, completion_tokens=ledger.completion_tokens,
                  wall_s=round(wall, 1), internal_score=result.internal_score, detail=detail[:1500],
                  version=result.version, instruction=prompt.instruction, n_demos=len(prompt.demos),
                  **scores.fields(), **_proposer_fields(proposer),
                  extra={"run_dir": str(run_dir), "peer": result.extra, "upstream_failures": ledger.upstream_failures,
                         "clamped": ledger.clamped, "note": system.note, "timed_out": "wall-clock limit" in status_note,
                         "calibration": prompt.calibration.method if prompt.calibration is not None else None,
                         "source_commit": source_commit(),
                         "final_is_seed": prompt.instruction.strip() == task.instruction.strip() and not prompt.demos
                         and prompt.calibration is None})


def _job(settings: Settings, name: str, spec: str, seed: int, budget: int, task: Task, up: Upstreams, run_id: str,
         run_dir: Path) -> Job:
    """The run's job file: its accounts at the proxies (opened here), its splits without test, its knobs."""
    prefix = up.proxy.open_run(run_id, budget, settings.max_tokens)
    proposer: dict[str, Any] = {}
    if up.proposer_proxy is not None and up.proposer_proxy_url is not None:
        cap = settings.proposer_budget or budget
        proposer = {"proposer_base_url": up.proposer_proxy_url + up.proposer_proxy.open_run(run_id, cap,
                                                                                             settings.max_tokens),
                    "proposer_model": up.proposer_model, "proposer_budget_calls": cap}
    sizing = Sizing(budget, len(task.dev), up.proposer_proxy is not None,
                    None if settings.server_url else settings.task_model)
    return Job(system=name, seed=seed, base_url=up.proxy_url + prefix, model=up.model, budget_calls=budget,
               max_tokens=settings.max_tokens, task=spec, instruction=task.instruction,
               output_format=task.output_format, labels=list(task.labels) if task.labels else None,
               train=[Pair(e.input, e.target) for e in task.train], dev=[Pair(e.input, e.target) for e in task.dev],
               out_dir=str(run_dir), metric=task.metric, options=SYSTEMS[name].options(sizing), **proposer)


def _proposer_fields(ledger: Ledger | None) -> dict[str, int]:
    if ledger is None:
        return {}
    return {"proposer_calls": ledger.calls, "proposer_refused": ledger.refused, "proposer_tokens": ledger.tokens}


def _launch(python: Path, runner: Path, job_path: Path, run_dir: Path, timeout_s: float) -> str:
    """Run one runner to completion (or kill it at the limit); returns a note when something went wrong."""
    cache = run_dir / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")]),
           "OPENAI_API_KEY": RUNNER_KEY, "PROMPTHONE_API_KEY": RUNNER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "XDG_CACHE_HOME": str(cache),
           "DSPY_CACHEDIR": str(cache / "dspy"), "PROMPTHONE_CACHE_DIR": str(cache / "prompthone")}
    with (run_dir / "runner.log").open("wb") as log:
        try:
            done = subprocess.run([str(python), str(runner), str(job_path)], cwd=run_dir, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return f"killed after the {timeout_s:.0f} s wall-clock limit"
    return f"runner exited with {done.returncode}" if done.returncode else ""


def slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(spec).stem if spec.endswith((".jsonl", ".csv", ".json")) else spec)


def _print_record(record: Record) -> None:
    score = "n/a" if record.test_score is None else f"{record.test_score:.3f}"
    text = "n/a" if record.test_score_text is None else f"{record.test_score_text:.3f}"
    proposer = f", {record.proposer_calls} proposer calls" if record.proposer_calls else ""
    print(f"[peers]   {record.status}: test {score} ({record.scoring_mode}), text {text}; {record.calls} calls "
          f"(+{record.refused} refused){proposer}, {record.prompt_tokens + record.completion_tokens} tokens, "
          f"{record.wall_s:.0f} s", flush=True)
