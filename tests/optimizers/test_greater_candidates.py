"""GREATER's candidate rules on fixed ranked lists: intersection within groups, union over groups, growth of k."""

from __future__ import annotations

import random

from prompthone.optimizers.greater_candidates import allowed_token, ends_sentence, propose, sample_groups

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


def test_k_grows_by_top_k_until_enough_candidates() -> None:
    # group (0,2) at k=2: {1,2} ∩ {3,2} = {2} (1 < 3 wanted); k=4: {1,2,3,4} ∩ {3,2,14,15} = {2,3};
    # k=6: {1..6} ∩ {3,2,14,15,1,16} = {1,2,3} → stop at k=6
    found = propose(RANKED, [(0, 2)], top_k=2, min_candidates=3, current=None)
    assert found.k == 6
    assert set(found.tokens) == {1, 2, 3}


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
    # k=2 gives {1,2} → only 2 valid; k=4 gives {1,2,3} → 2 and 3 valid
    assert found.k == 4
    assert found.tokens == (2, 3)


def test_groups_are_seeded_distinct_and_capped_by_the_number_of_examples() -> None:
    a = sample_groups(10, 5, 3, random.Random(7))
    assert a == sample_groups(10, 5, 3, random.Random(7))
    assert len(a) == 3 and all(len(set(g)) == 5 for g in a)
    assert sample_groups(3, 5, 2, random.Random(0)) == ((0, 1, 2), (0, 1, 2))


def test_token_filter_and_sentence_ends() -> None:
    assert allowed_token(" reasoning") and allowed_token("Use") and allowed_token(".")
    assert not allowed_token(" 42") and not allowed_token("é") and not allowed_token("<|im_end|>")
    assert not allowed_token("  two") and not allowed_token("")
    assert ends_sentence(".") and ends_sentence(" step.") and not ends_sentence(" step")
