"""GREATER's candidate tokens for one prompt position, and the choice among the shortlisted ones.

Das et al. (2025) §3.2, as the reference code (psunlpgroup/GreaTer, `llm_opt/gcg/greater_opt.py`,
`GCGMultiPrompter.morph_control`) does it: for each training example the model's next-token distribution at the
position (given the input and the prompt so far) proposes its top-k tokens, the token at the previous position
excluded; the candidates are the tokens that all members of a small random group of examples agree on
(intersection), pooled over `topq` groups (union); while there are fewer than `min_candidates`, k grows by
`k_step` (2) and the groups are drawn again. The current token is added to the candidates (the gradient is
taken at it), but the choice does not favour it: `choose` takes the shortlisted token with the lowest loss, the
later one in gradient order on a tie, and takes a sentence end at once once the position is past half the
initial prompt. Pure functions over ranked token lists and measured losses, so the rules are tested with exact
numbers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prompthone.errors import ConfigError
from prompthone.models.base import WhiteBox

#: Tokens a prompt may contain: an ASCII word (with or without its leading space), a full stop or a comma, as in
#: the reference (`attack_manager.get_nonascii_toks`: letters and spaces, or "." or ","). Tokens of spaces only
#: or with two leading spaces are left out here (they do not survive re-tokenization of the prompt).
_ALLOWED = re.compile(r"^ ?[A-Za-z]+$|^[.,]$")
#: A token that ends the prompt's sentence: the reference's test is a "." in the chosen token.
SENTENCE_ENDS = (".",)
#: The text whose last token grows the prompt (the reference's `tokenizer.encode("_")[-1]`, its `ellipsis_token`).
PLACEHOLDER_TEXT = "_"

L = TypeVar("L")


def allowed_token(text: str) -> bool:
    """Whether a decoded token may enter a prompt (ASCII word, full stop or comma; no digits, no symbols)."""
    return bool(_ALLOWED.match(text))


def ends_sentence(text: str) -> bool:
    return text.strip().endswith(SENTENCE_ENDS)


def placeholder_token(wb: WhiteBox) -> int:
    """The token appended to grow the prompt: the last token of "_", as the reference takes it."""
    ids = wb.encode(PLACEHOLDER_TEXT)
    if not ids:
        raise ConfigError(f"the tokenizer makes no token of {PLACEHOLDER_TEXT!r}, GREATER's placeholder")
    return ids[-1]


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
            current: int | None, valid: Callable[[int], bool] = lambda _t: True, k_step: int = 2,
            exclude: int | None = None,
            regroup: Callable[[], Sequence[Sequence[int]]] | None = None) -> CandidateSet:
    """Candidates from each example's allowed tokens ranked by probability (best first).

    `exclude` (the token at the previous position) is taken out of every ranked list first. For k = top_k,
    top_k + k_step, ...: the union over `groups` of the intersection of the group members' top-k tokens, keeping
    tokens `valid` accepts; stop at the first k that yields `min_candidates`, or when k covers every ranked list
    (then whatever was found; the reference would loop forever). Each growth of k draws new groups from
    `regroup` when given (the reference draws them anew), else keeps `groups`. `current` (the token now at the
    position; None for a placeholder) is added last, even if excluded. Order: by best rank across examples, so
    the record reads best first.
    """
    if exclude is not None:
        ranked = [[t for t in r if t != exclude] for r in ranked]
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
        k += max(1, k_step)
        if regroup is not None:
            groups = regroup()
    tokens = sorted(found, key=lambda t: (best_rank[t], t))
    if current is not None and current not in found:
        tokens.append(current)
    return CandidateSet(tuple(tokens), k, tuple(tuple(g) for g in groups))


def shortlist(basis: Sequence[int], gradients: Sequence[float], n: int, *, skip_first: bool) -> list[int]:
    """Indices into `basis` of the `n` most negative gradients, most negative first (the lower index on a tie).

    `basis[0]` is the current token: it competes like any other unless `skip_first` (a placeholder, or the
    protected current token of `keep_current`, which is compared apart).
    """
    start = 1 if skip_first else 0
    return sorted(range(start, len(basis)), key=lambda i: (gradients[i], i))[:n]


@dataclass(frozen=True)
class Choice(Generic[L]):
    """What `choose` decided: the token, its losses, every token measured (in order) and why."""

    token: int
    losses: L
    tried: tuple[tuple[int, L], ...]
    #: 'best' (lowest loss among the shortlist), 'sentence-end' (taken at once), 'kept' (the protected current
    #: token was no worse than the best shortlisted one)
    how: str


def choose(order: Sequence[int], measure: Callable[[int], L], key: Callable[[L], float], *,
           take_at_once: Callable[[int], bool] = lambda _t: False,
           current: tuple[int, L] | None = None) -> Choice[L]:
    """The token to put at the position, measuring the shortlisted tokens in `order` (most negative gradient first).

    As the reference's selection step: each token is measured in turn (`measure`: reasoning regenerated with the
    token in place); the lowest `key` wins and a later token wins a tie (its `<=`); a token that `take_at_once`
    accepts (a sentence end past half the initial prompt) is chosen as soon as it is measured, and the rest are
    not. `current`, when given, is our former rule (`keep_current`): the current token and its loss, compared
    with the best of the shortlist and preferred on a tie.
    """
    tried: list[tuple[int, L]] = []
    best: tuple[int, L] | None = None
    for token in order:
        measured = measure(token)
        tried.append((token, measured))
        if take_at_once(token):
            return Choice(token, measured, tuple(tried), "sentence-end")
        if best is None or key(measured) <= key(best[1]):
            best = (token, measured)
    if current is not None and (best is None or key(current[1]) <= key(best[1])):
        return Choice(current[0], current[1], tuple(tried), "kept")
    if best is None:
        raise ValueError("nothing to choose from: an empty shortlist and no current token")
    return Choice(best[0], best[1], tuple(tried), "best")
