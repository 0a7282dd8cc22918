"""`prompthone study`: the eccentric-prompts experiment (Battle & Gollapudi 2024) on any task and model.

A hand grid of system messages (opener × task line × closer, with and without chain-of-thought) scored on dev,
optionally by successive halving, then optimizers at the same budget, ranked among the hand prompts.
"""

from __future__ import annotations

from prompthone.grid_study.evaluate import GridOutcome, HandRow, evaluate_grid
from prompthone.grid_study.grid import GridSpec, HandVariant, default_grid, expand_grid, load_grid
from prompthone.grid_study.halving import HalvingResult, Rung, calls_saved, rung_sizes, successive_halving
from prompthone.grid_study.ranking import Ranking, rank_among
from prompthone.grid_study.runner import OptimizerOutcome, StudyResult, study

__all__ = ["GridOutcome", "GridSpec", "HalvingResult", "HandRow", "HandVariant", "OptimizerOutcome", "Ranking", "Rung",
           "StudyResult", "calls_saved", "default_grid", "evaluate_grid", "expand_grid", "load_grid", "rank_among",
           "rung_sizes", "study", "successive_halving"]
