"""Best-arm selection over candidate prompts (bandits), as pure functions any optimizer can use."""

from __future__ import annotations

from prompthone.selection.bandits import (
    SELECTORS,
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
    ucbe_index,
)

__all__ = ["SELECTORS", "ArmStats", "Pull", "SelectionResult", "brute_force", "get_selector", "successive_halving",
           "successive_rejects", "ucb", "ucb_e", "ucb_index", "ucbe_index"]
