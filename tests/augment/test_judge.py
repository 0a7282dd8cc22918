"""Pairwise judging: order swapping, the combination rule, win-rate arithmetic, the reply parser, and the real model."""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest
from tests.fakes.fake_judge import ScriptedJudge, shown_answers

from prompthone.augment.judge import (
    JudgeItem,
    OrderVerdict,
    PairwiseJudge,
    Preference,
    Verdict,
    bootstrap_ci,
    combine_orders,
    normalized_first,
    parse_verdict,
    probability_preference,
    win_rate,
)
from prompthone.errors import ConfigError, InputError
from prompthone.evaluation.cache import CallCache

ITEMS = [JudgeItem("Capital of France?", "Paris.", "Berlin."),
         JudgeItem("2 + 2?", "4", "5"),
         JudgeItem("A primary colour?", "Red.", "Purple.")]


@pytest.mark.parametrize(("as_a", "as_b", "outcome", "consistent"), [
    ("first", "first", "win", True),
    ("second", "second", "loss", True),
    ("first", "second", "tie", False),     # always-A judge: the orders disagree
    ("second", "first", "tie", False),     # always-B judge
    ("tie", "tie", "tie", True),
    ("first", "tie", "tie", False),
    ("first", None, "tie", False),
    (None, None, "tie", False),            # unreadable twice: no evidence, not "consistent"
])
def test_combine_orders(as_a: Preference, as_b: Preference, outcome: str, consistent: bool) -> None:
    assert combine_orders(as_a, as_b) == (outcome, consistent)


def test_probability_helpers() -> None:
    assert normalized_first(0.0, 0.0) == 0.5
    assert normalized_first(-float("inf"), -float("inf")) is None
    assert normalized_first(-1.0, -2.0) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert [probability_preference(p) for p in (0.7, 0.3, 0.5, None)] == ["first", "second", "tie", None]


@pytest.mark.parametrize("mode", ["labels", "generate"])
def test_always_a_judge_gives_ties_with_zero_consistency(mode: str) -> None:
    judge = PairwiseJudge(ScriptedJudge(), mode=mode)
    verdicts = judge.judge(ITEMS)
    assert [v.outcome for v in verdicts] == ["tie"] * 3
    assert [(v.first_as_a.preference, v.first_as_b.preference) for v in verdicts] == [("first", "second")] * 3
    summary = win_rate(verdicts)
    assert (summary.wins, summary.ties, summary.losses, summary.win_rate, summary.consistency) == (0, 3, 0, 0.5, 0.0)
    if mode == "labels":
        assert all(v.score == pytest.approx(0.5) for v in verdicts)  # position preference cancels exactly
        assert summary.mean_score == pytest.approx(0.5)
    else:
        assert summary.mean_score is None and summary.unreadable == 0


@pytest.mark.parametrize("mode", ["labels", "generate"])
def test_judge_preferring_an_answer_in_both_orders_gives_wins(mode: str) -> None:
    model = ScriptedJudge(favourite="Paris")
    verdicts = PairwiseJudge(model, mode=mode).judge(ITEMS[:1])
    assert verdicts[0].outcome == "win" and verdicts[0].consistent
    # Both orders were asked, with the answers swapped, in one batch.
    assert [shown_answers(r.messages) for r in model.requests] == [("Paris.", "Berlin."), ("Berlin.", "Paris.")]
    losing = PairwiseJudge(ScriptedJudge(favourite="Berlin"), mode=mode).judge(ITEMS[:1])
    assert losing[0].outcome == "loss" and losing[0].consistent
    if mode == "labels":
        p = 1 / (1 + math.exp(-2.4))
        assert verdicts[0].score == pytest.approx(p) and losing[0].score == pytest.approx(1 - p)


def test_mode_selection() -> None:
    assert PairwiseJudge(ScriptedJudge()).mode == "labels"
    assert PairwiseJudge(ScriptedJudge(score=False)).mode == "generate"
    with pytest.raises(ConfigError, match="cannot score"):
        PairwiseJudge(ScriptedJudge(score=False), mode="labels")


def _verdict(outcome: str, consistent: bool, score: float | None = None, unreadable: int = 0) -> Verdict:
    order = OrderVerdict("A", None if unreadable else "first", None, "")
    return Verdict(order, OrderVerdict("B", None if unreadable > 1 else "first", None, ""),
                   outcome, consistent, score)


def test_win_rate_arithmetic() -> None:
    verdicts = [_verdict("win", True, 0.9), _verdict("win", True, 0.8), _verdict("tie", False, 0.5),
                _verdict("loss", True, 0.2), _verdict("tie", False, 0.6, unreadable=2)]
    s = win_rate(verdicts, seed=3)
    assert (s.n, s.wins, s.ties, s.losses) == (5, 2, 2, 1)
    assert s.win_rate == pytest.approx(3 / 5)          # (2 + 2/2) / 5
    assert s.consistency == pytest.approx(3 / 5)
    assert s.mean_score == pytest.approx(3.0 / 5)
    assert s.unreadable == 2
    assert s.ci_low <= s.win_rate <= s.ci_high
    assert win_rate([*verdicts[:2], _verdict("tie", False)]).mean_score is None  # only when every item has one
    with pytest.raises(InputError):
        win_rate([])


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    values = [1.0, 1.0, 0.5, 0.0, 1.0, 0.5, 0.0, 1.0]
    first = bootstrap_ci(values, rng=random.Random(7))
    assert first == bootstrap_ci(values, rng=random.Random(7))
    assert first != bootstrap_ci(values, rng=random.Random(8))
    assert 0.0 <= first[0] < sum(values) / len(values) < first[1] <= 1.0
    assert bootstrap_ci([1.0] * 5, rng=random.Random(0)) == (1.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], rng=random.Random(0), resamples=4000) == (0.0, 1.0)


@pytest.mark.parametrize(("reply", "letter"), [
    ("A", "A"), ("B.", "B"), (" **B**", "B"), ("[[A]]", "A"), ("Answer A", "A"), ("Answer: B", "B"),
    ("Assistant B is better.", "B"), ("The better answer is A.", "A"), ("I prefer B because it is concise.", "B"),
    ("(A)", "A"), ("B\n\nIt gives the right number.", "B"), ("Response B", "B"), ("A is better.", "A"),
    ("I think answer B is more helpful.", "B"), ("Answer A is better than Answer B.", "A"),
    ("B is better than A", "B"), ("tie", "tie"), ("It's a tie.", "tie"), ("Both answers are equally good.", "tie"),
    ("Neither A nor B answers the question.", "tie"), ("Answer A and Answer B are equal.", "tie"),
    ("A good answer should explain more.", None), ("a", None), ("I cannot decide without more context", None),
    ("", None), ("A's explanation is better than B's.", None),
])
def test_parse_verdict(reply: str, letter: str | None) -> None:
    assert parse_verdict(reply) == letter


# -- the embedded model ------------------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["labels", "generate"])
def test_embedded_judge_asks_both_orders(embedded_model: Any, mode: str, tmp_path: Any) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    judge = PairwiseJudge(embedded_model, mode=mode, cache=cache)
    started = time.perf_counter()
    verdicts = judge.judge(ITEMS)
    seconds = time.perf_counter() - started
    assert len(cache) == 2 * len(ITEMS)  # each item asked in two distinct orders
    assert judge.model.meter.spend.calls == 2 * len(ITEMS)
    for v in verdicts:
        assert (v.first_as_a.first_label, v.first_as_b.first_label) == ("A", "B")
        assert v.outcome in ("win", "tie", "loss")
        assert v.consistent == (v.first_as_a.preference is not None
                                and v.first_as_a.preference == v.first_as_b.preference)
        if mode == "labels":
            assert v.score is not None and 0.0 <= v.score <= 1.0
            assert v.first_as_a.p_first is not None and v.first_as_b.p_first is not None
        else:
            assert v.score is None and v.first_as_a.reply
    summary = win_rate(verdicts)
    assert summary.wins + summary.ties + summary.losses == summary.n == len(ITEMS)
    print(f"\n{mode}: consistency {summary.consistency:.2f}, mean score {summary.mean_score}, "
          f"{seconds / len(ITEMS):.2f} s/item, replies {[v.first_as_a.reply for v in verdicts]}")
    again = judge.judge(ITEMS)  # a re-run is answered by the cache
    assert again == verdicts and judge.model.meter.spend.cache_hits == 2 * len(ITEMS)
    cache.close()
