"""GREATER's candidate rules on fixed ranked lists (intersection within groups, union over groups, growth of k,
the previous token excluded) and its choice among the shortlisted tokens, as the reference implementation has them."""

from __future__ import annotations

import random

import pytest

from prompthone.optimizers.greater import GREATER
from prompthone.optimizers.greater_candidates import (
    allowed_token,
    choose,
    ends_sentence,
    propose,
    sample_groups,
    shortlist,
)
from prompthone.optimizers.greater_loss import Losses

# Four examples' allowed tokens, most probable first.
RANKED = [
    [1, 2, 3, 4, 5, 6, 7, 8],
    [2, 1, 9, 3, 10, 11, 12, 13],
    [3, 2, 14, 15, 1, 16, 17, 18],
    [20, 21, 22, 23, 24, 25, 26, 2],
]


def test_intersection_within_a_group_and_union_over_groups() -> None:
    found = propose(RANKED, [(0, 1), (1, 2)], top_k=2, min_candidates=1, current=None)
    # group (0,1): top-2 {1,2} ∩ {2,1} = {1,2}; group (1,2): {2,1} ∩ {3,2} = {2}; union {1,2}, best rank first
    assert found.tokens == (1, 2)
    assert found.k == 2


def test_k_grows_until_enough_candidates() -> None:
    # group (0,2) at k=2: {1,2} ∩ {3,2} = {2} (1 < 3 wanted); k=4: {1,2,3,4} ∩ {3,2,14,15} = {2,3};
    # k=6: {1..6} ∩ {3,2,14,15,1,16} = {1,2,3} → stop at k=6
    found = propose(RANKED, [(0, 2)], top_k=2, min_candidates=3, current=None)
    assert found.k == 6
    assert set(found.tokens) == {1, 2, 3}


def test_k_grows_by_two_as_in_the_reference_not_by_top_k() -> None:
    # group (0,2) at k=3: {1,2,3} ∩ {3,2,14} = {2,3}; k=5: {1..5} ∩ {3,2,14,15,1} = {1,2,3} → stop at k=5
    # (growing by top_k would have stopped at k=6)
    found = propose(RANKED, [(0, 2)], top_k=3, min_candidates=3, current=None)
    assert found.k == 5
    assert propose(RANKED, [(0, 2)], top_k=3, min_candidates=3, current=None, k_step=3).k == 6  # the former rule


def test_each_growth_of_k_draws_the_groups_again() -> None:
    drawn: list[tuple[tuple[int, ...], ...]] = [((0, 1),), ((1, 2),)]
    # k=2 with (0,3): {1,2} ∩ {20,21} = {} → k=4 with the next draw (0,1): {1,2,3,4} ∩ {2,1,9,3} = {1,2,3}
    found = propose(RANKED, [(0, 3)], top_k=2, min_candidates=2, current=None, regroup=lambda: drawn.pop(0))
    assert found.k == 4 and found.groups == ((0, 1),)
    assert found.tokens == (1, 2, 3)
    assert drawn == [((1, 2),)]  # one draw per growth


def test_the_previous_positions_token_is_excluded_before_the_top_k() -> None:
    # without 2: [1,3,4,...] and [1,9,3,...]: k=2 gives {1,3} ∩ {1,9} = {1}
    found = propose(RANKED, [(0, 1)], top_k=2, min_candidates=1, current=None, exclude=2)
    assert found.tokens == (1,)
    # the current token is added even when it is the excluded one (the reference appends it after the top-k)
    assert propose(RANKED, [(0, 1)], top_k=2, min_candidates=1, current=2, exclude=2).tokens == (1, 2)


def test_growth_stops_when_the_lists_run_out() -> None:
    found = propose(RANKED, [(0, 3)], top_k=3, min_candidates=5, current=None)
    assert found.k >= len(RANKED[0])
    assert found.tokens == (2,)  # the only token both lists share at all


def test_the_current_token_is_always_kept_and_comes_last_when_not_proposed() -> None:
    found = propose(RANKED, [(0, 1)], top_k=2, min_candidates=1, current=99)
    assert found.tokens == (1, 2, 99)
    found = propose(RANKED, [(0, 1)], top_k=2, min_candidates=1, current=2)
    assert found.tokens == (1, 2)  # no duplicate


def test_invalid_tokens_do_not_count_towards_the_minimum() -> None:
    found = propose(RANKED, [(0, 1)], top_k=2, min_candidates=2, current=None, valid=lambda t: t != 1)
    # k=2 gives {1,2} → only 2 valid; k=4 gives {1,2,3} → 2 and 3 valid (k grows by 2)
    assert found.k == 4
    assert found.tokens == (2, 3)


def test_groups_are_seeded_distinct_and_capped_by_the_number_of_examples() -> None:
    a = sample_groups(10, 5, 3, random.Random(7))
    assert a == sample_groups(10, 5, 3, random.Random(7))
    assert len(a) == 3 and all(len(set(g)) == 5 for g in a)
    assert sample_groups(3, 5, 2, random.Random(0)) == ((0, 1, 2), (0, 1, 2))


def test_token_filter_and_sentence_ends() -> None:
    assert allowed_token(" reasoning") and allowed_token("Use") and allowed_token(".") and allowed_token(",")
    assert not allowed_token(" 42") and not allowed_token("é") and not allowed_token("<|im_end|>")
    assert not allowed_token("  two") and not allowed_token("") and not allowed_token("_")
    assert ends_sentence(".") and ends_sentence(" step.") and not ends_sentence(" step")


def test_punctuation_is_the_references_full_stop_and_comma_only() -> None:
    assert not allowed_token("?") and not allowed_token("!") and not allowed_token(";") and not allowed_token(":")
    assert not ends_sentence("?") and not ends_sentence("!")


# -- the choice among the shortlisted tokens ---------------------------------------------------------------------

def _losses(ce: float, nll: float, errors: float) -> Losses:
    return Losses((ce,), (nll,), (errors,))


def test_the_shortlist_ranks_every_candidate_by_gradient_the_current_one_included() -> None:
    basis = [7, 8, 9, 10]  # 7: the current token
    grads = [-3.0, -1.0, -2.0, 0.5]
    assert shortlist(basis, grads, 2, skip_first=False) == [0, 2]  # the current token competes
    assert shortlist(basis, grads, 2, skip_first=True) == [2, 1]  # a placeholder (or a protected token) does not
    assert shortlist(basis, [-1.0, -1.0, -1.0, -1.0], 2, skip_first=False) == [0, 1]  # ties: the lower index


def test_the_best_shortlisted_token_wins_even_when_the_current_token_was_better() -> None:
    measured = {8: 0.5, 9: 0.4}
    choice = choose([8, 9], lambda t: measured[t], lambda v: v)
    assert (choice.token, choice.how) == (9, "best")
    assert choice.tried == ((8, 0.5), (9, 0.4))
    # the former rule (keep_current): a current token measured at 0.3 is compared and kept
    kept = choose([8, 9], lambda t: measured[t], lambda v: v, current=(7, 0.3))
    assert (kept.token, kept.how) == (7, "kept")
    # ... and kept on a tie
    assert choose([8, 9], lambda t: measured[t], lambda v: v, current=(7, 0.4)).token == 7


def test_a_tie_goes_to_the_later_token_in_gradient_order() -> None:
    choice = choose([8, 9, 10], lambda t: 0.25, lambda v: v)
    assert choice.token == 10  # the reference's `loss_new <= selection_min_loss`


def test_a_sentence_end_past_half_the_prompt_is_taken_at_once() -> None:
    seen: list[int] = []

    def measure(token: int) -> float:
        seen.append(token)
        return {8: 0.1, 3: 0.9, 9: 0.0}[token]

    choice = choose([8, 3, 9], measure, lambda v: v, take_at_once=lambda t: t == 3)
    assert (choice.token, choice.how) == (3, "sentence-end")
    assert seen == [8, 3]  # the tokens after it are not measured


def test_selection_is_by_error_rate_plus_a_fiftieth_of_the_nll_by_default() -> None:
    low_ce = _losses(ce=0.1, nll=1.0, errors=1.0)  # confident in the gold answer, yet the argmax is wrong
    right = _losses(ce=2.0, nll=3.0, errors=0.0)
    default = GREATER()
    assert (default.selection, default.selection_lam) == ("errors", 0.02)
    assert default._key(low_ce) == pytest.approx(1.0 + 0.02 * 1.0)
    assert default._key(right) == pytest.approx(0.02 * 3.0)
    assert default._key(right) < default._key(low_ce)
    former = GREATER(selection="loss")  # CE + λ·NLL
    assert former._key(low_ce) == pytest.approx(0.1 + 0.2 * 1.0) and former._key(low_ce) < former._key(right)
