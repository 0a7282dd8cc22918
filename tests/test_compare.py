"""`compare`: method specs, the summary statistics, and an end-to-end run on the embedded model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import prompthone as ph
from prompthone.compare import (
    ComparisonRow,
    MethodSpec,
    RunOutcomes,
    compare,
    markdown,
    mean_cell,
    mean_interval,
    summarize,
    vs_seed,
    vs_seed_cell,
)
from prompthone.errors import ConfigError
from prompthone.evaluation.statistics import mean_over_runs_and_examples, paired_comparison
from prompthone.store import RunStore
from prompthone.tasks.example import Example, Task


def test_method_specs_parse_and_validate_early() -> None:
    spec = MethodSpec.parse("apo:selector=ucb-e, rounds=2")
    assert (spec.method, spec.options) == ("apo", {"selector": "ucb-e", "rounds": "2"})
    assert MethodSpec.parse("seed").method == "seed"
    with pytest.raises(ConfigError, match="unknown method"):
        MethodSpec.parse("nope")
    with pytest.raises(ConfigError, match="key=value"):
        MethodSpec.parse("apo:ucb")
    with pytest.raises(ConfigError, match="unknown option"):
        MethodSpec.parse("apo:beam=3")


def test_summary_is_mean_and_sample_std() -> None:
    rows = [ComparisonRow("a", 0, 0.5, 0.4, 10, 2, 100, 1.0), ComparisonRow("a", 1, 0.7, 0.6, 20, 4, 300, 3.0),
            ComparisonRow("b", 0, 0.9, 0.9, 0, 0, 0, 0.5)]
    a, b = summarize(rows)
    assert a["method"] == "a" and a["seeds"] == 2
    assert a["test_mean"] == pytest.approx(0.6) and a["test_std"] == pytest.approx(0.1414213, abs=1e-6)
    assert (a["task_calls"], a["meta_calls"], a["tokens"], a["wall_time_s"]) == (15, 3, 200, 2.0)
    assert b["test_std"] == 0.0
    assert a["vs_seed"] is None and b["vs_seed"] is None  # rows without per-example outcomes: nothing to pair


def test_test_interval_is_the_t_interval_over_seeds() -> None:
    # 0.6, 0.7, 0.8: mean 0.7, sample sd 0.1; scipy.stats.t.ppf(0.975, 2) = 4.302652729749462, so the half-width
    # is 4.302652729749462 * 0.1 / sqrt(3) = 0.2484138...: (0.4515862, 0.9484138)
    assert mean_interval([0.6, 0.7, 0.8]) == pytest.approx([0.4515862288, 0.9484137712], abs=1e-9)
    # 0.5, 0.7: sd 0.1414214, t.ppf(0.975, 1) = 12.706204736174694: half-width 12.7062047 * 0.1414214 / sqrt(2)
    assert mean_interval([0.5, 0.7]) == pytest.approx([0.6 - 1.2706204736, 0.6 + 1.2706204736], abs=1e-9)
    assert mean_interval([0.9]) is None  # one seed: its spread over seeds is unknown
    # rows without per-example outcomes: the t interval over seeds
    rows = [ComparisonRow("a", s, v, 0.5, 0, 0, 0, 0.0) for s, v in enumerate([0.6, 0.7, 0.8])]
    rows.append(ComparisonRow("one", 0, 0.9, 0.9, 0, 0, 0, 0.0))
    a, one = summarize(rows)
    assert a["test_ci95"] == pytest.approx([0.4515862288, 0.9484137712], abs=1e-9)
    assert one["test_ci95"] is None
    assert mean_cell(a) == "0.700 (0.452 … 0.948)"
    assert mean_cell(one) == "0.900 (1 seed: no interval)"


def test_with_per_example_outcomes_the_interval_is_over_seeds_and_examples() -> None:
    rows = _paired_rows()
    [m] = summarize(rows)
    assert m["test_ci95"] == list(mean_over_runs_and_examples([RUN0, RUN1])[1:])
    low, high = m["test_ci95"]
    # two seeds (0.8, 0.6): the t interval would be 0.7 ± 12.7 · 0.1 (-0.571 … 1.971), outside any score
    assert 0 <= low < m["test_mean"] < high <= 1
    one = summarize(rows[:1])[0]
    assert one["test_ci95"] is not None and one["test_ci95"][0] < 0.8 < one["test_ci95"][1]  # the examples' spread


SEED = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0)  # the seed prompt on 10 test examples: 0.3
RUN0 = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0)  # 0.8: +0.5 on the seed (5 better, 0 worse)
RUN1 = (0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0)  # 0.6: +0.3 (4 better, 1 worse)


def _paired_rows() -> list[ComparisonRow]:
    return [ComparisonRow("m", 0, 0.8, 0.7, 10, 1, 5, 1.0, test_outcomes=RunOutcomes(RUN0, SEED)),
            ComparisonRow("m", 1, 0.6, 0.6, 10, 1, 5, 1.0, test_outcomes=RunOutcomes(RUN1, SEED))]


def test_vs_seed_averages_the_per_example_differences_over_seeds() -> None:
    c = vs_seed(_paired_rows())
    assert c is not None
    # per example, mean over seeds of (best - seed): 0-0.5 ... = (-.5, 1, .5, 1, 0, 1, .5, 0, .5, 0): mean 0.4,
    # the mean of the two runs' differences (+0.5, +0.3)
    assert (c.n, c.score_a, c.score_b, c.difference) == (10, pytest.approx(0.7), pytest.approx(0.3),
                                                         pytest.approx(0.4))
    # 6 examples better on average, 1 worse, 3 tied; averages of 0/1 are not 0/1: the exact sign-flip permutation
    # test of the mean over the 7 nonzero differences (-.5, 1, .5, 1, 1, .5, .5; sum 4): of the 128 sign patterns,
    # |sum| >= 4 for 10 (5 with sum >= 4, mirrored), p = 10 / 128 (the sign test, blind to sizes, says 16 / 128;
    # pooling the 20 pairs would count each example twice)
    assert (c.wins, c.losses, c.ties, c.test) == (6, 1, 3, "permutation")
    assert c.p_value == pytest.approx(10 / 128)
    # the interval is paired_comparison's bootstrap over examples of the seed-averaged scores
    averaged = [(x + y) / 2 for x, y in zip(RUN0, RUN1, strict=True)]
    assert c == paired_comparison(averaged, list(SEED))
    assert c.low < 0.4 < c.high


def test_summary_reports_vs_seed_and_the_markdown_says_it() -> None:
    rows = [*_paired_rows(), ComparisonRow("seed", 0, 0.3, 0.3, 0, 0, 0, 0.1, test_outcomes=RunOutcomes(SEED, SEED))]
    m, seed = summarize(rows)
    assert m["vs_seed"]["difference"] == pytest.approx(0.4) and m["vs_seed"]["p_value"] == pytest.approx(10 / 128)
    assert seed["vs_seed"]["difference"] == 0.0 and seed["vs_seed"]["p_value"] == 1.0
    assert (seed["vs_seed"]["low"], seed["vs_seed"]["high"], seed["vs_seed"]["significant"]) == (0.0, 0.0, False)
    c = m["vs_seed"]
    cell = f"+0.400 ({c['low']:+.3f} … {c['high']:+.3f}), p=0.078"
    assert vs_seed_cell(m) == (cell if c["significant"] else f"no significant difference: {cell}")
    assert vs_seed_cell(seed) == "— (the seed prompt)"
    table = markdown([m, seed], "header")
    assert "| test mean (95% CI) |" in table and "| vs seed (paired, 95% CI, p) |" in table
    assert f"| m | {mean_cell(m)} | 0.141 | {vs_seed_cell(m)} |" in table
    assert rows[0].record() == {"label": "m", "seed": 0, "test_score": 0.8, "dev_score": 0.7, "task_calls": 10,
                                "meta_calls": 1, "tokens": 5, "wall_time_s": 1.0, "run_dir": None, "run_id": None,
                                "usd": None}


def test_vs_seed_with_one_seed_is_that_runs_mcnemar_test() -> None:
    c = vs_seed(_paired_rows()[:1])
    assert c is not None and c == paired_comparison(list(RUN0), list(SEED))
    # 5 examples right that the seed got wrong, none the other way: exact McNemar p = 2 / 2**5 = 0.0625
    assert (c.difference, c.wins, c.losses, c.test) == (pytest.approx(0.5), 5, 0, "mcnemar-exact")
    assert c.p_value == pytest.approx(0.0625)


def test_vs_seed_recomputes_a_metric_that_is_not_a_mean() -> None:
    targets = ("pos", "pos", "neg", "neg")
    task = Task("t", (), (), tuple(Example(f"x{i}", t) for i, t in enumerate(targets)), metric="macro_f1",
                labels=("pos", "neg"))

    def outcomes(best: tuple[str, ...], seed: tuple[str, ...]) -> RunOutcomes:
        right = [tuple(float(p == t) for p, t in zip(preds, targets, strict=True)) for preds in (best, seed)]
        return RunOutcomes(right[0], right[1], best, seed)

    seed = ("pos", "pos", "pos", "pos")  # F1 pos 2*2/(4+2) = 2/3, neg 0: macro 1/3
    run0 = ("pos", "pos", "neg", "neg")  # macro 1
    run1 = ("pos", "neg", "neg", "neg")  # F1 pos 2/(2+1) = 2/3, neg 4/(4+1) = 4/5: macro 11/15
    rows = [ComparisonRow("m", s, math.nan, math.nan, 0, 0, 0, 0.0, test_outcomes=outcomes(b, seed))
            for s, b in enumerate((run0, run1))]
    c = vs_seed(rows, task)
    assert c is not None
    # mean over seeds of macro-F1(best) - macro-F1(seed): ((1 - 1/3) + (11/15 - 1/3)) / 2 = 8/15
    assert (c.score_a, c.score_b, c.difference) == (pytest.approx(13 / 15), pytest.approx(1 / 3),
                                                    pytest.approx(8 / 15))
    # the sign test reads the per-example scores averaged over seeds: x2 and x3 better (1 vs 0), x1 worse (run1
    # misses it: 0.5 vs 1), x0 tied; p = 2 * P(Binomial(3, 1/2) <= 1) = 2 * 4 / 8, capped at 1
    assert (c.wins, c.losses, c.ties, c.test, c.p_value) == (2, 1, 1, "sign", 1.0)
    assert c.low <= 8 / 15 <= c.high


@pytest.mark.e2e
def test_compare_end_to_end(embedded_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import prompthone.compare as compare_module

    evaluated: list[object] = []
    real_evaluate = compare_module.evaluate

    def counted(task: Task, prompt: object, *args: object, **kwargs: object) -> object:
        evaluated.append(prompt)
        return real_evaluate(task, prompt, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(compare_module, "evaluate", counted)
    task = ph.load_task("gen:sentiment_templates", limit=40)
    methods = ["seed", "ape:num_subsamples=2,num_prompts_per_subsample=2,eval_samples=6,mc_rounds=0",
               "apo:rounds=1,beam_size=2,minibatch_size=6,n_gradients=1,eval_rounds=2,eval_prompts_per_round=2,"
               "samples_per_eval=3,selector=successive-halving"]
    rows, path = compare(task, methods, model=embedded_model, task_calls=30, seeds=[0, 1], run_dir=tmp_path,
                         cache=tmp_path / "c.sqlite", progress=False)
    assert len(rows) == 6
    # the runs' per-example test outcomes come from the store: only the `seed` rows evaluate (dev and test)
    assert evaluated == [None] * 4
    assert all(r.task_calls <= 30 for r in rows)
    assert {r.test_score for r in rows if r.label == "seed"} == {rows[0].test_score}  # same split every seed
    saved = json.loads((path / "compare.json").read_text())
    assert len(saved["rows"]) == 6 and [s["method"] for s in saved["summary"]] == methods
    assert (path / "compare.md").read_text().count("\n| ") >= 4
    assert "vs seed (paired, 95% CI, p)" in (path / "compare.md").read_text()
    by_method = {s["method"]: s for s in saved["summary"]}
    seed_vs = by_method["seed"]["vs_seed"]  # the seed prompt against itself, example by example
    assert (seed_vs["difference"], seed_vs["low"], seed_vs["high"], seed_vs["wins"], seed_vs["losses"]) == (0, 0, 0,
                                                                                                             0, 0)
    for label, s in by_method.items():
        mine = [r for r in rows if r.label == label]
        low, high = s["test_ci95"]
        assert low <= s["test_mean"] <= high
        vs = s["vs_seed"]
        assert vs["n"] == len(task.test) and vs["low"] <= vs["difference"] <= vs["high"]
        # the metric is a per-example mean: the paired difference is the mean over seeds of (test - seed's test)
        assert vs["difference"] == pytest.approx(s["test_mean"] - by_method["seed"]["test_mean"])
        for r in mine:  # each run's per-example outcomes are the ones behind its test score, on the seed's examples
            assert r.test_outcomes is not None
            assert sum(r.test_outcomes.best) / len(task.test) == pytest.approx(r.test_score)
            assert r.test_outcomes.seed == rows[0].test_outcomes.seed  # type: ignore[union-attr]
    members = [r.run_id for r in rows if r.label != "seed"]
    assert all(members) and all(r.run_id is None for r in rows if r.label == "seed")
    with RunStore.default(tmp_path) as store:  # the comparison and its runs: one store, one way runs are saved
        group = store.get_run(path.name)
        assert (group.method, group.status) == ("compare", "finished")
        assert group.result is not None and group.result["members"] == members
        assert [e["label"] for e in store.events(path.name) if e["event"] == "member"] == [r.label for r in rows]
        assert {store.get_run(m).method for m in members} == {"ape", "apo"}
