"""The budget-sized successive-halving race (`selection.racing`), with exact numbers."""

from __future__ import annotations

import pytest

from prompthone.errors import ConfigError
from prompthone.selection.racing import (
    bases_active,
    keep_count,
    plan_rungs,
    race_cost,
    rung_count,
    slice_sizes,
)


def test_keep_count_halves_but_never_below_the_finalists_nor_above_the_active() -> None:
    assert [keep_count(n, 2) for n in (1, 2, 3, 7, 8)] == [1, 1, 2, 4, 4]
    assert keep_count(3, 3, finalists=2) == 2
    assert keep_count(1, 2, finalists=2) == 1


def test_rung_count_halves_down_to_the_finalists() -> None:
    assert rung_count(27, 2, 2) == 5  # 27 → 14 → 7 → 4 → 2, and the rung that scores the 2
    assert rung_count(2, 2, 2) == 1
    assert rung_count(9, 3, 1) == 3  # 9 → 3 → 1
    with pytest.raises(ConfigError, match="eta"):
        rung_count(4, 1, 1)


def test_bases_active_is_bounded_by_the_bases_and_by_the_arms() -> None:
    # 9 bases × 3 calibrations = 27 arms: every base may be active until fewer arms than bases are left
    assert bases_active(27, 9, 2, 5, finalists=2) == [9, 9, 7, 4, 2]


def test_slice_sizes_grow_by_eta_to_the_final_slice_and_respect_the_floor() -> None:
    assert slice_sizes(64, 4, 2, 8) == (8, 16, 32, 64)
    assert slice_sizes(40, 4, 2, 8) == (8, 10, 20, 40)
    assert slice_sizes(10, 4, 2, 8) == (8, 8, 8, 10)


def test_race_cost_pays_each_base_only_for_examples_it_has_not_seen() -> None:
    # rung sizes 8, 16, 32: 4 bases × 8 + 2 × 8 more + 1 × 16 more, plus 3 calls per entering base
    assert race_cost((8, 16, 32), (4, 2, 1), per_base=3) == 4 * 8 + 2 * 8 + 16 + 4 * 3
    assert race_cost((8, 8, 10), (4, 2, 1)) == 32 + 0 + 2


def test_plan_takes_the_largest_final_slice_the_budget_pays_for() -> None:
    plan = plan_rungs(8, 8, 200, 200, eta=2, min_slice=8, finalists=1)
    assert plan is not None and plan.cost <= 200
    assert plan.sizes[0] >= 8 and plan.sizes == tuple(sorted(plan.sizes))
    bigger = plan_rungs(8, 8, 200, 201, eta=2, min_slice=8, finalists=1)
    assert bigger is not None and bigger.sizes[-1] >= plan.sizes[-1]
    # one more example on the last slice would overflow the budget
    over = race_cost(slice_sizes(plan.sizes[-1] + 1, 4, 2, 8), bases_active(8, 8, 2, 4, 1))
    assert over > 200 or plan.sizes[-1] == 200


def test_plan_is_the_whole_split_without_a_budget_and_none_when_the_floor_does_not_fit() -> None:
    plan = plan_rungs(6, 2, 50, None, eta=2, min_slice=8, finalists=2)
    assert plan is not None and plan.sizes[-1] == 50
    assert plan_rungs(20, 20, 100, 100, eta=2, min_slice=8) is None  # 20 bases × 8 examples already cost 160
    small = plan_rungs(3, 3, 5, 100, eta=2, min_slice=8, finalists=1)  # fewer examples than the floor: all of them
    assert small is not None and small.sizes[-1] == 5
    with pytest.raises(ConfigError):
        plan_rungs(0, 1, 10, None)
