"""Per-example test scores in raw result files, compactly: what lets every paired figure be recomputed.

Why a string: most scores are 0 or 1 (accuracy), and a 200-example test split scored by 5 seeds and a dozen methods
is then a few kilobytes of "0101…" instead of a JSON list per example. Other scores keep 4 digits.
"""

from __future__ import annotations

from collections.abc import Sequence


def encode(scores: Sequence[float]) -> str | list[float]:
    """Per-example scores, compactly: a string of '0'/'1' when every score is 0 or 1, else floats to 4 digits."""
    if all(s in (0.0, 1.0) for s in scores):
        return "".join("1" if s == 1.0 else "0" for s in scores)
    return [round(float(s), 4) for s in scores]


def decode(scores: str | list[float]) -> list[float]:
    """The per-example scores `encode` wrote."""
    return [float(c) for c in scores] if isinstance(scores, str) else [float(s) for s in scores]
