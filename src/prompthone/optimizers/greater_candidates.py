"""GREATER's candidate tokens for one prompt position: what the task model itself would write there.

Das et al. (2025) §3.2: for each training example the model's next-token distribution at the position
(given the input and the prompt so far) proposes its top-k tokens; the candidates are the tokens that all
members of a small random group of examples agree on (intersection), pooled over `topq` groups (union), with k
grown until there are enough of them. The current token is always kept, so a step can leave the prompt as
it is. Pure functions over ranked token lists, so the rules are tested with exact numbers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Tokens a prompt may contain: an ASCII word (with or without its leading space) or sentence punctuation.
#: The paper keeps ASCII/alphabetic tokens; punctuation is allowed too, or a prompt could never end a sentence
#: (growth stops at a sentence end).
_ALLOWED = re.compile(r"^ ?[A-Za-z]+$|^[.,;:?!]$")
SENTENCE_ENDS = (".", "?", "!")


def allowed_token(text: str) -> bool:
    """Whether a decoded token may enter a prompt (ASCII word or punctuation, no digits, no symbols)."""
    return bool(_ALLOWED.match(text))


def ends_sentence(text: str) -> bool:
    return text.strip().endswith(SENTENCE_ENDS)


@dataclass(frozen=True)
class CandidateSet:
    """The candidates of one position and how they were found (for the run record)."""

    tokens: tuple[int, ...]
    k: int
    groups: tuple[tuple[int, ...], ...]


def sample_groups(n_examples: int, group_size: int, topq: int, rng: random.Random) -> tuple[tuple[int, ...], ...]:
    """`topq` random groups of `group_size` distinct example indices (smaller when there are fewer examples)."""
    size = max(1, min(group_size, n_examples))
    return tuple(tuple(sorted(rng.sample(range(n_examples), size))) for _ in range(topq))


def propose(ranked: Sequence[Sequence[int]], groups: Sequence[Sequence[int]], *, top_k: int, min_candidates: int,
            current: int | None, valid: Callable[[int], bool] = lambda _t: True) -> CandidateSet:
    """Candidates from each example's allowed tokens ranked by probability (best first).

    For k = top_k, 2·top_k, 3·top_k, ...: the union over `groups` of the intersection of the group members'
    top-k tokens, keeping tokens `valid` accepts; stop at the first k that yields `min_candidates`, or when k
    covers every ranked list (then whatever was found). `current` (the token now at the position; None for a
    placeholder) is added last. Order: by best rank across examples, so the record reads best first.
    """
    longest = max((len(r) for r in ranked), default=0)
    best_rank: dict[int, int] = {}
    for r in ranked:
        for rank, token in enumerate(r):
            best_rank[token] = min(rank, best_rank.get(token, rank))
    k = max(1, top_k)
    while True:
        found: set[int] = set()
        for group in groups:
            members = [set(ranked[i][:k]) for i in group]
            if members:
                found |= set.intersection(*members)
        found = {t for t in found if valid(t)}
        if len(found) >= min_candidates or k >= longest:
            break
        k += max(1, top_k)
    tokens = sorted(found, key=lambda t: (best_rank[t], t))
    if current is not None and current not in found:
        tokens.append(current)
    return CandidateSet(tuple(tokens), k, tuple(tuple(g) for g in groups))
