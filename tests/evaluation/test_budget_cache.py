"""Exact checks of budget accounting, the call cache and the metered model."""

from __future__ import annotations

import pytest
from tests.fakes.fake_model import CountingModel

from prompthone.errors import BudgetExhausted
from prompthone.evaluation.budget import Budget, BudgetMeter
from prompthone.evaluation.cache import CallCache, request_key
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Completion, ContinuationScores, GenerationRequest, Message, ScoringRequest


def _gen(i: int) -> GenerationRequest:
    return GenerationRequest((Message("user", f"question {i}"),), max_tokens=5)


def test_budget_rejects_negative_limits() -> None:
    with pytest.raises(ValueError):
        Budget(calls=-1)


def test_meter_reserves_until_the_call_budget_is_spent() -> None:
    meter = BudgetMeter(Budget(calls=2))
    meter.reserve("task")
    meter.reserve("meta")
    with pytest.raises(BudgetExhausted, match="2 calls"):
        meter.reserve("task")
    assert meter.spend.calls == 2
    assert meter.spend.by_role == {"task": 1, "meta": 1}


def test_meter_stops_on_tokens() -> None:
    meter = BudgetMeter(Budget(tokens=100))
    meter.reserve("task")
    meter.record(90, 20, cached=False)
    assert meter.exhausted()
    with pytest.raises(BudgetExhausted):
        meter.reserve("task")


def test_cache_round_trips_and_persists(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    cache = CallCache(path)
    req = _gen(1)
    cache.put("m", req, Completion("hi", 3, 1, "stop"))
    sreq = ScoringRequest((Message("user", "x"),), ("a", "b"))
    cache.put("m", sreq, ContinuationScores((-0.5, -1.5), 4))
    cache.close()
    reopened = CallCache(path)
    assert reopened.get("m", req) == Completion("hi", 3, 1, "stop")
    assert reopened.get("m", sreq) == ContinuationScores((-0.5, -1.5), 4)
    assert reopened.get("other-model", req) is None
    assert len(reopened) == 2


def test_request_key_depends_on_every_field() -> None:
    base = _gen(1)
    assert request_key("m", base) == request_key("m", _gen(1))
    variants = [GenerationRequest(base.messages, max_tokens=6), GenerationRequest(base.messages, temperature=0.5),
                GenerationRequest(base.messages, seed=3), GenerationRequest(base.messages, stop=("x",)), _gen(2)]
    keys = {request_key("m", v) for v in variants}
    assert len(keys) == len(variants) and request_key("m", base) not in keys


def test_cache_hits_cost_nothing_but_count_against_the_budget(tmp_path) -> None:
    model = CountingModel()
    cache = CallCache(tmp_path / "c.sqlite")
    first = MeteredModel(model, meter=BudgetMeter(Budget(calls=3)), cache=cache)
    with pytest.raises(BudgetExhausted):
        first.generate([_gen(i) for i in range(5)])
    assert model.calls == 3 and first.meter.spend.new_calls == 3 and first.meter.spend.new_tokens == 39
    # A re-run with the same budget stops at the same request and pays for nothing.
    second = MeteredModel(model, meter=BudgetMeter(Budget(calls=3)), cache=cache)
    with pytest.raises(BudgetExhausted):
        second.generate([_gen(i) for i in range(5)])
    assert model.calls == 3
    spend = second.meter.spend
    assert (spend.calls, spend.cache_hits, spend.new_calls, spend.new_tokens) == (3, 3, 0, 0)
    assert spend.tokens == 39  # budget-counted tokens include the cached ones
    third = MeteredModel(model, meter=BudgetMeter(), cache=cache)
    out = third.generate([_gen(i) for i in range(5)])
    assert model.calls == 5 and third.meter.spend.new_calls == 2 and len(out) == 5


def test_budget_stops_mid_batch_and_keeps_paid_results(tmp_path) -> None:
    model = CountingModel(max_concurrency=2)
    cache = CallCache(tmp_path / "c.sqlite")
    metered = MeteredModel(model, meter=BudgetMeter(Budget(calls=3)), cache=cache)
    with pytest.raises(BudgetExhausted):
        metered.generate([_gen(i) for i in range(10)])
    assert model.calls == 3  # a chunk of 2, then the last granted call, then the budget stops the batch
    assert metered.meter.spend.calls == 3
    assert len(cache) == 3  # every paid-for result was cached before the stop


def test_a_request_repeated_in_one_batch_is_paid_once(tmp_path) -> None:
    model = CountingModel(max_concurrency=8)
    metered = MeteredModel(model, meter=BudgetMeter(), cache=CallCache(tmp_path / "c.sqlite"))
    batch = [_gen(0), _gen(1), _gen(0), _gen(0), _gen(2), _gen(1)]
    out = metered.generate(batch)
    assert model.calls == 3 and out[0] == out[2] == out[3] and out[1] == out[5] and out[0] != out[1]
    spend = metered.meter.spend
    assert (spend.calls, spend.new_calls, spend.cache_hits) == (6, 3, 3)  # as if sent one after another
    without_cache = CountingModel(max_concurrency=8)
    assert len(MeteredModel(without_cache, meter=BudgetMeter()).generate(batch)) == 6
    assert without_cache.calls == 6  # --no-cache: every copy is sent


def test_scores_come_back_in_request_order(tmp_path) -> None:
    model = CountingModel()
    metered = MeteredModel(model, meter=BudgetMeter(), cache=CallCache(tmp_path / "c.sqlite"))
    reqs = [ScoringRequest((Message("user", f"q{i}"),), ("a", "b")) for i in range(4)]
    direct = [s for _, s in CountingModel().score(reqs)]
    assert metered.score(reqs) == direct


def test_task_call_budget_limits_only_the_task_model() -> None:
    meter = BudgetMeter(Budget(task_calls=3))
    assert meter.reserve("meta", 10) == 10  # meta-model calls are not capped by task_calls
    assert meter.reserve("task", 5) == 3
    with pytest.raises(BudgetExhausted, match="3 task-model calls"):
        meter.reserve("task")
    assert meter.reserve("meta") == 1
    assert meter.spend.by_role == {"meta": 11, "task": 3}
