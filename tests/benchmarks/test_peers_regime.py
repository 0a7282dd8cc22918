"""The peer benchmark's regime with a separate proposer, on fakes: routing and accounting at the two proxies, knob
sizing when proposer calls are not paid from the budget, both test scores, failure notes and the raw file."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.peers import harness, report
from benchmarks.peers.__main__ import main, parse_args, settings_from, smoke_failures
from benchmarks.peers.harness import Record, Settings, TaskInfo
from benchmarks.peers.job import Job
from benchmarks.peers.raw import Raw, read_raw, write_raw
from benchmarks.peers.runners import dspy_runner, promptolution_runner, textgrad_runner
from benchmarks.peers.systems import SYSTEMS, Sizing, System
from tests.fakes.fake_openai_server import FakeOpenAIServer

#: a runner that spends one task call more than its budget and one proposer call more than its cap, then reports
#: the proposer's reply as its instruction
FAKE_RUNNER = textwrap.dedent('''
    import httpx
    from benchmarks.peers.job import PeerResult, main_job

    job = main_job()
    def ask(url, model):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 999}
        return httpx.post(url + "/chat/completions", json=body, timeout=10)
    task = [ask(job.base_url, job.model).status_code for _ in range(job.budget_calls + 1)]
    proposer = [ask(job.proposer_url, job.proposer) for _ in range(job.proposer_budget_calls + 1)]
    instruction = proposer[0].json()["choices"][0]["message"]["content"]
    PeerResult("ok", instruction, detail=f"task statuses {task}", extra={"options": job.options}).write(
        job.result_path)
''')


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    task = FakeOpenAIServer(reply_text="positive", model_ids=("fake-task",)).start()
    proposer = FakeOpenAIServer(reply_text="Say the sentiment.", model_ids=("fake-proposer",)).start()
    yield task, proposer
    task.stop()
    proposer.stop()


def _task_file(path: Path, positives: int = 10) -> Path:
    """20 reviews, the first `positives` of them positive (the loader shuffles before it splits)."""
    rows = [{"input": f"review number {i} was {'great' if i < positives else 'awful'}",
             "target": "positive" if i < positives else "negative"} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_task_calls_are_the_budget_and_proposer_calls_have_their_own_account(
        servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task_server, proposer_server = servers
    runner = tmp_path / "fake_runner.py"
    runner.write_text(FAKE_RUNNER, encoding="utf-8")
    monkeypatch.setitem(SYSTEMS, "fake-peer", System("fake-peer", str(runner), None, "a fake",
                                                     SYSTEMS["dspy-copro"].options))

    @contextlib.contextmanager
    def fake_embedded(spec: str, log: Path, n_ctx: int = 4096) -> Iterator[tuple[str, str]]:
        assert spec == "qwen-1.5b"
        yield proposer_server.base_url, "fake-proposer"

    monkeypatch.setattr(harness, "serve_embedded", fake_embedded)
    settings = Settings([str(_task_file(tmp_path / "reviews.jsonl"))], [0], 3, [1.0], ["seed", "fake-peer"],
                        tmp_path / "out", max_tokens=16, limit=None, server_url=task_server.base_url,
                        regime="qwen", task_model="qwen-0.5b", proposer_model="qwen-1.5b", proposer_budget=2)
    records, infos = harness.run_suite(settings)

    seed, peer = records
    assert (seed.system, seed.calls, seed.proposer_calls) == ("seed", 0, 0) and seed.test_score_text is not None
    assert (peer.calls, peer.refused, peer.proposer_calls, peer.proposer_refused) == (3, 1, 2, 1)
    assert peer.status == "cut_off"  # the runner said ok, but the proxies refused calls
    assert peer.instruction == "Say the sentiment." and not peer.extra["final_is_seed"]
    assert peer.test_score is not None and peer.test_score_text is not None and peer.scoring_mode == "labels"
    assert "[200, 200, 200, 403]" in peer.detail
    # each model saw only its own role's requests, every completion clamped to the cap; test scoring went to the
    # task server directly, uncounted
    proposer_bodies = [r.body for r in proposer_server.requests if r.method == "POST"]
    assert len(proposer_bodies) == 2 and all(b["model"] == "fake-proposer" and b["max_tokens"] == 16
                                             for b in proposer_bodies)
    assert all(r.body["model"] == "fake-task" for r in task_server.requests if r.method == "POST")
    job = json.loads((Path(peer.extra["run_dir"]) / "job.json").read_text())
    assert (job["budget_calls"], job["proposer_budget_calls"], job["proposer_model"]) == (3, 2, "fake-proposer")
    assert job["options"] == {"calls_per_prediction": 2.0}  # a `--server-url` model: not measured, so 2
    assert smoke_failures(records, settings) == []
    assert infos[0].sizes == {"train": 8, "dev": 4, "test": 8}


#: a runner that keeps the seed instruction and reports a calibration whose prior all but forbids "negative"
CALIBRATED_RUNNER = textwrap.dedent('''
    from benchmarks.peers.job import PeerResult, main_job

    job = main_job()
    prior = {"method": "batch", "labels": ["positive", "negative"], "log_prior": [-0.0025, -6.0], "n": 32}
    PeerResult("ok", job.instruction, calibration=prior).write(job.result_path)
''')


def test_a_found_calibration_is_applied_to_label_scoring_and_not_to_text_scoring(
        servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task_server, _ = servers  # label log-probabilities favour "positive"; replies say "positive"
    runner = tmp_path / "calibrated_runner.py"
    runner.write_text(CALIBRATED_RUNNER, encoding="utf-8")
    monkeypatch.setitem(SYSTEMS, "fake-auto", System("fake-auto", str(runner), None, "a fake"))
    settings = Settings([str(_task_file(tmp_path / "reviews.jsonl", positives=15))], [0, 1], 3, [1.0],
                        ["seed", "fake-auto"], tmp_path / "out", max_tokens=16, limit=None,
                        server_url=task_server.base_url, data_seed=0, dev_size=4, test_size=10)
    seed, found, seed_again, found_again = harness.run_suite(settings)[0]
    # one split for both seeds (data_seed): the same 10 test examples, each one's outcome recorded both ways
    assert seed.outcomes == seed_again.outcomes and found.outcomes == found_again.outcomes
    assert seed.outcomes is not None and len(seed.outcomes) == 10 and seed.outcomes_text == seed.outcomes
    positive_share = seed.test_score
    assert positive_share is not None and positive_share > 0.5  # the uncalibrated seed answers "positive" always
    # divided by its prior, "positive" loses everywhere: every answer is "negative" under the found prompt
    assert found.test_score == pytest.approx(1 - positive_share)
    assert found.test_score_text == seed.test_score_text == pytest.approx(positive_share)  # text: as generated
    assert found.extra["calibration"] == "batch" and not found.extra["final_is_seed"]


def test_knobs_are_sized_without_proposer_calls_when_the_proposer_is_separate() -> None:
    # DSPy COPRO: 300 task calls on 30 dev examples is 10 candidates; paying for proposals it is 9 (or fewer).
    assert dspy_runner._copro_knobs(300, 30, 1.0, proposer_counts=False)[:2] == (10, 1)
    assert dspy_runner._copro_knobs(300, 30, 1.0)[0] * dspy_runner._copro_knobs(300, 30, 1.0)[1] < 10
    mipro = dspy_runner._mipro_knobs(300, 60, 30, 1.0, proposer_counts=False)
    assert (mipro["num_trials"], mipro["minibatch_size"], mipro["estimated_calls"]) == (15, 10, 278)
    # paying for its ~13 proposer calls (data summary, program description, 4 proposals) costs it a trial at 290
    assert dspy_runner._mipro_knobs(290, 60, 30, 1.0, proposer_counts=False)["num_trials"] == 15
    assert dspy_runner._mipro_knobs(290, 60, 30, 1.0)["num_trials"] == 14
    assert dspy_runner._mipro_knobs(10, 12, 6, 2.0)["num_trials"] == 1  # nothing fits: one trial, the proxy cuts
    # promptolution OPRO: 1 meta call + E task calls per new instruction, or E alone
    assert promptolution_runner.plan("opro", 300, 30, meta_counts=False)["planned_new"] == 9
    assert promptolution_runner.plan("opro", 300, 30)["planned_new"] == 8
    assert promptolution_runner.plan("capo", 300, 30, meta_counts=False)["population"] >= \
        promptolution_runner.plan("capo", 300, 30)["population"]
    # TextGrad: b forward calls per step, or 3b + 1 with the backward and TGD calls
    job = _job(separate=True)
    assert textgrad_runner.budgeted_step_cost(job, 3) == 3
    assert textgrad_runner.budgeted_step_cost(_job(separate=False), 3) == 10
    # prompthone's APE proposes more when proposals are free of the budget
    assert SYSTEMS["prompthone-ape"].options(Sizing(300, 30, True))["num_prompts_per_subsample"] == 4
    # DSPy's calls per prediction follow the task model, not whether a separate proposer is there
    assert SYSTEMS["dspy-mipro"].options(Sizing(60, 10))["calls_per_prediction"] == 2.0
    assert SYSTEMS["dspy-mipro"].options(Sizing(60, 10, False, "qwen-0.5b"))["calls_per_prediction"] == 1.0
    assert SYSTEMS["dspy-mipro"].options(Sizing(60, 10, True, "local"))["calls_per_prediction"] == 2.0
    assert SYSTEMS["dspy-gepa"].options(Sizing(60, 10, True, None))["calls_per_prediction"] == 2.0  # a server


def _job(separate: bool) -> Job:
    proposer = {"proposer_base_url": "http://p/v1", "proposer_model": "p", "proposer_budget_calls": 9} \
        if separate else {}
    return Job("textgrad", 0, "http://t/v1", "t", 30, 16, "t", "Classify.", "", None, [], [], "/tmp", **proposer)


def test_the_qwen_regime_serves_two_models_and_the_default_is_unchanged() -> None:
    qwen = settings_from(parse_args(["--regime", "qwen"]))
    assert (qwen.task_model, qwen.proposer_model, qwen.separate_proposer) == ("qwen-0.5b", "qwen-1.5b", True)
    assert qwen.tasks == ["gen:boolean_expressions", "examples/reviews.jsonl"] and qwen.max_tokens == 256
    assert qwen.out.name == "peers-qwen" and qwen.budget == 300
    # 5 seeds on one split (60 train / 30 dev / 200 test), so the tables can pair systems example by example
    assert qwen.seeds == [0, 1, 2, 3, 4] and (qwen.data_seed, qwen.limit, qwen.dev_size, qwen.test_size) == \
        (0, 290, 30, 200)
    assert qwen.systems[:2] == ["seed", "prompthone-auto"]  # the default method is a system
    default = settings_from(parse_args(["--quick"]))
    assert (default.task_model, default.proposer_model, default.tasks) == ("local", None,
                                                                          ["gen:sentiment_templates"])
    assert default.out.name == "peers-quick" and default.runner_timeout_s == 1800.0
    assert default.data_seed is None and settings_from(parse_args([])).seeds == [0, 1, 2]  # smollm: as before


def _failed(system: str, detail: str, seed: int = 0, **extra: object) -> Record:
    return Record("t", seed, 40, system, "failed", 0.5, calls=3, detail=detail, test_score_text=0.5,
                  extra={"final_is_seed": True, **extra})


def test_failures_are_listed_with_the_runners_reason() -> None:
    records = [
        Record("t", 0, 0, "seed", "ok", 0.5, test_score_text=0.5),
        _failed("dspy-copro", "DSPy raised AdapterParseError: no [[ ## answer ## ]] (during copro, after 3 calls); "
                "parse failures: ChatAdapter 3/3", seed=0),
        _failed("dspy-copro", "DSPy raised AdapterParseError: no [[ ## answer ## ]] (during copro, after 3 calls); "
                "parse failures: ChatAdapter 3/3", seed=1),
        _failed("textgrad", "killed after the 60 s wall-clock limit; the runner wrote no result", timed_out=True),
        Record("t", 0, 40, "prompthone-ape", "ok", 0.7, calls=40, test_score_text=0.6, extra={}),
    ]
    notes = report.failure_notes(records)
    assert len(notes) == 2  # the two dspy-copro runs merge; clean runs are not listed
    assert notes[0].startswith("- dspy-copro: failed, returned the seed prompt (seed 0 at 40, seed 1 at 40): "
                               "DSPy raised AdapterParseError")
    assert "parse failures" not in notes[0]
    assert "textgrad: failed, timed out" in notes[1] and "killed after the 60 s" in notes[1]
    table, _ = report.task_table("t", report.rows_by_task(records)["t"],
                                 [TaskInfo("t", 0, ["a", "b"], 0.5, {"train": 1, "dev": 1, "test": 1})], records)
    assert "Where a system failed or fell back" in table and notes[1] in table


def test_the_section_is_written_from_a_committed_raw_file(tmp_path: Path) -> None:
    settings = Settings(["t"], [0], 40, [1.0], ["seed", "prompthone-ape", "dspy-copro"], tmp_path / "out",
                        regime="qwen", task_model="qwen-0.5b", proposer_model="qwen-1.5b")
    records = [Record("t", 0, 0, "seed", "ok", 0.5, test_score_text=0.45),
               Record("t", 0, 40, "prompthone-ape", "ok", 0.75, calls=40, proposer_calls=6, test_score_text=0.7,
                      extra={"peer": {"big": "x" * 5000, "small": 1}}),
               _failed("dspy-copro", "DSPy raised ValueError: bad")]
    infos = [TaskInfo("t", 0, ["a", "b"], 0.5, {"train": 8, "dev": 4, "test": 8})]
    command = "python -m benchmarks.peers --regime qwen --tasks t --seeds 0 --budget 40"
    path = write_raw(tmp_path / "peers-qwen.jsonl", Raw(command, settings, {"dspy": "3.4.1"}, "the machine", infos,
                                                        records))
    raw = read_raw(path)
    assert raw.records[1].extra["peer"]["small"] == 1 and raw.records[1].extra["peer"]["big"].startswith("(trimmed")
    assert (raw.settings.proposer_model, raw.infos, raw.records[0]) == ("qwen-1.5b", infos, records[0])
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other\n\nkept\n", encoding="utf-8")
    assert main(["--from-raw", str(path), "--results", str(results)]) == 0
    text = results.read_text(encoding="utf-8")
    assert f"Command: `{command}`" in text and "kept" in text and "Versions: dspy 3.4.1; the machine." in text
    assert "Qwen2.5-Coder-1.5B-Instruct" in text and "budget 40 task-model calls" in text
    assert "| prompthone-ape | 0.750 ± 0.000 | 0.700 ± 0.000 | — | 40 | 6 |" in text
    assert "- dspy-copro: failed, returned the seed prompt (seed 0 at 40): DSPy raised ValueError: bad" in text
    assert (tmp_path / "peers-t.png").exists()
    (tmp_path / "junk.jsonl").write_text('{"kind": "other"}\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="not a peers raw"):
        read_raw(tmp_path / "junk.jsonl")


def test_quick_mode_flags_a_proposer_over_its_cap(tmp_path: Path) -> None:
    settings = Settings(["t"], [0], 40, [1.0], ["seed", "textgrad"], tmp_path, proposer_model="qwen-1.5b",
                        proposer_budget=10)
    seed = Record("t", 0, 0, "seed", "ok", 0.5, test_score_text=0.5)
    over = Record("t", 0, 40, "textgrad", "ok", 0.5, calls=40, proposer_calls=11, test_score_text=0.5)
    unscored = Record("t", 0, 40, "textgrad", "ok", 0.5, calls=40, proposer_calls=3)
    assert any("11 proposer calls" in p for p in smoke_failures([seed, over], settings))
    assert any("scored both ways" in p for p in smoke_failures([seed, unscored], settings))


def test_score_test_reads_a_generate_only_scorer_once(tmp_path: Path) -> None:
    """Where the default reading is generation, the text score is that same reading, not a second pass."""
    from benchmarks.peers.harness import score_test
    from tests.fakes.fake_model import CountingModel

    from prompthone.evaluation.cache import CallCache
    from prompthone.prompts.prompt import Prompt
    from prompthone.tasks.example import Example, Task

    examples = tuple(Example(f"input {i}", "yes") for i in range(5))
    task = Task("t", examples, examples, examples, metric="label_accuracy", labels=("yes", "no"))
    for can_score, calls in ((False, 5), (True, 5 + 5)):  # labels: one scoring request per example, then text
        scorer = CountingModel(score=can_score)
        scores = score_test(task, Prompt("Classify."), scorer, CallCache(tmp_path / f"{can_score}.sqlite"), 16)
        assert scorer.calls == calls
        assert scores.mode == ("labels" if can_score else "generate")
        if not can_score:
            assert scores.text == scores.score


def test_resuming_refuses_results_made_with_other_settings(tmp_path: Path) -> None:
    first = Settings(["t"], [0], 300, [1.0], ["seed"], tmp_path, data_seed=0, dev_size=30, test_size=200)
    (tmp_path / "settings.json").write_text(json.dumps(first.to_dict()), encoding="utf-8")
    (tmp_path / "results.jsonl").write_text("", encoding="utf-8")
    more = Settings(["t", "u"], [0, 1, 2], 300, [1.0], ["seed", "textgrad"], tmp_path, data_seed=0, dev_size=30,
                    test_size=200)
    harness._check_resumable(more)  # more tasks, seeds or systems: the same runs, resumed and extended
    other = Settings(["t"], [0], 300, [1.0], ["seed"], tmp_path, data_seed=None)
    with pytest.raises(SystemExit, match=r"other settings \(data_seed: 0 then, None now; dev_size: 30 then, None "
                                         r"now; test_size: 200 then, None now\)"):
        harness._check_resumable(other)


def test_a_raw_file_carries_finished_runs_into_the_next_session(
        servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of many hours spans sessions that keep only what is committed: the raw file, rewritten after every
    run, is carried into the next invocation's fresh `--out`, whose runs it then skips."""
    task_server, _ = servers
    runner = tmp_path / "calibrated_runner.py"
    runner.write_text(CALIBRATED_RUNNER, encoding="utf-8")
    monkeypatch.setitem(SYSTEMS, "fake-auto", System("fake-auto", str(runner), None, "a fake"))
    raw_path, results = tmp_path / "raw.jsonl", tmp_path / "RESULTS.md"
    task = str(_task_file(tmp_path / "reviews.jsonl"))

    def session(n: int, *seeds: int, budget: str = "3") -> list[str]:
        return ["--tasks", task, "--seeds", *map(str, seeds), "--systems", "fake-auto", "--budget", budget,
                "--levels", "1", "--max-tokens", "16", "--server-url", task_server.base_url, "--raw", str(raw_path),
                "--results", str(results), "--out", str(tmp_path / f"out{n}")]

    assert main(session(1, 0)) == 0
    written = []
    real_write = write_raw
    monkeypatch.setattr("benchmarks.peers.__main__.write_raw",
                        lambda path, raw: written.append(len(raw.records)) or real_write(path, raw))
    assert main(session(2, 0, 1)) == 0  # a fresh --out: seed 0 comes from the raw file
    assert len(list((tmp_path / "out2" / "runs").iterdir())) == 1  # only seed 1's fake-auto ran
    assert written == [3, 4, 4]  # after each of seed 1's two runs, then at the end
    assert main(session(3, 2)) == 0  # another seed alone: the earlier seeds stay in the file and the section
    raw = read_raw(raw_path)
    assert sorted((r.seed, r.system) for r in raw.records) == [(s, n) for s in (0, 1, 2) for n in ("fake-auto",
                                                                                                   "seed")]
    assert raw.settings.seeds == [0, 1, 2] and {i.seed for i in raw.infos} == {0, 1, 2}
    section = results.read_text(encoding="utf-8")
    assert "Incomplete" not in section and "(3 runs)." in section  # each run names the commit it was made from
    with pytest.raises(SystemExit, match=r"other settings \(budget: 3 then, 4 now\)"):
        main(session(4, 3, budget="4"))


def test_a_section_from_runs_still_in_progress_says_what_is_missing() -> None:
    settings = Settings(["t", "u"], [0, 1], 40, [1.0], ["seed", "prompthone-ape"], Path("out"))
    records = [Record("t", 0, 0, "seed", "ok", 0.5, test_score_text=0.5),
               Record("t", 0, 40, "prompthone-ape", "ok", 0.7, calls=40, test_score_text=0.6)]
    missing = report.missing_runs(records, settings)
    assert missing[:2] == ["t seed 1: seed", "t seed 1: prompthone-ape"] and len(missing) == 6
    infos = [TaskInfo("t", 0, ["a", "b"], 0.5, {"train": 8, "dev": 4, "test": 8})]
    assert "**Incomplete: 6 planned runs have no result yet**" in report.render(records, infos, settings, "c", None)


def test_test_scoring_reads_each_example_both_ways_in_turn(
        servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path) -> None:
    """The label request and the text request of an example go one after the other with the same messages (the
    server's prompt cache then serves the second whole), and the scores are those of two passes over the split."""
    from prompthone.evaluation.budget import BudgetMeter
    from prompthone.evaluation.cache import CallCache
    from prompthone.evaluation.evaluator import Evaluator
    from prompthone.evaluation.metered import MeteredModel
    from prompthone.models.openai_compat import OpenAICompatModel
    from prompthone.prompts.prompt import Prompt
    from prompthone.tasks.registry import load_task

    task_server, _ = servers
    task = load_task(str(_task_file(tmp_path / "reviews.jsonl")), seed=0, limit=None, dev_size=4, test_size=6)
    prompt = Prompt(task.instruction, output_format=task.output_format)
    with OpenAICompatModel(task_server.base_url, "fake-task", max_concurrency=1) as scorer:
        scores = harness.score_test(task, prompt, scorer, CallCache(tmp_path / "a.sqlite"), 16)
        bodies = [r.body for r in task_server.requests if r.method == "POST"]
        model = MeteredModel(scorer, meter=BudgetMeter(None), cache=CallCache(tmp_path / "b.sqlite"))
        labels = Evaluator(task, model).evaluate(prompt, task.test)  # two passes, as before
        text = Evaluator(task, model, mode="generate", max_tokens=16).evaluate(prompt, task.test)
    assert len(bodies) == 12
    for label_body, text_body in zip(bodies[::2], bodies[1::2], strict=True):
        assert label_body["messages"] == text_body["messages"]
        assert (label_body["max_tokens"], text_body["max_tokens"]) == (1, 16)
    assert len({json.dumps(b["messages"]) for b in bodies}) == 6
    assert (scores.mode, scores.score, scores.text) == ("labels", labels.score, text.score)
    assert (scores.outcomes, scores.outcomes_text) == (labels.per_example(), text.per_example())
