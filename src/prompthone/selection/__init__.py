"""Selection over candidate prompts, as pure functions any optimizer can use: best-arm bandits and Pareto fronts."""

from __future__ import annotations

from prompthone.selection.bandits import (
    SELECTORS,
    UCB_TIMES,
    ArmStats,
    Pull,
    SelectionResult,
    brute_force,
    get_selector,
    successive_halving,
    successive_rejects,
    ucb,
    ucb_e,
    ucb_index,
    ucb_index_rounds,
    ucbe_index,
)
from prompthone.selection.pareto import (
    front_counts,
    instance_fronts,
    nondominated,
    remove_dominated,
    select_from_pareto_front,
)

__all__ = ["SELECTORS", "UCB_TIMES", "ArmStats", "Pull", "SelectionResult", "brute_force", "front_counts",
           "get_selector", "instance_fronts", "nondominated", "remove_dominated", "select_from_pareto_front",
           "successive_halving", "successive_rejects", "ucb", "ucb_e", "ucb_index", "ucb_index_rounds", "ucbe_index"]
