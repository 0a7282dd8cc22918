"""The golden (prompt, complement) and (prompt, rewrite) pairs we wrote: the few-shot seed of PAS's generation.

Two per category for each design, in `golden/pas.jsonl` and `golden/rewrite.jsonl` (package data). PAS §3.2 seeds
complement generation with a handful of human-written pairs per category; these are ours, written for this
library, never taken from a data set.
"""

from __future__ import annotations

from collections import defaultdict
from importlib import resources
from pathlib import Path

from prompthone.augment.categories import CATEGORIES
from prompthone.augment.designs import design_name
from prompthone.augment.pairs import Pair, read_pairs
from prompthone.errors import InputError


def golden_path(design: str) -> Path:
    """The packaged golden file of a design ('pas' or 'rewrite')."""
    return Path(str(resources.files("prompthone.augment") / "golden" / f"{design_name(design)}.jsonl"))


def load_golden(design: str, path: Path | None = None) -> dict[str, list[Pair]]:
    """Golden pairs by category; a user file may replace ours (same JSONL format, `category` required)."""
    design = design_name(design)
    source = path or golden_path(design)
    by_category: dict[str, list[Pair]] = defaultdict(list)
    for number, pair in enumerate(read_pairs(source), start=1):
        if pair.category not in CATEGORIES:
            raise InputError(f"unknown category {pair.category!r} (expected one of {', '.join(CATEGORIES)})",
                             path=str(source), line=number, field="category")
        by_category[pair.category].append(Pair(pair.prompt, pair.output, pair.category, design))
    return dict(by_category)
