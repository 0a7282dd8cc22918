"""GREATER's walk over prompt positions: left to right, cut at a newly chosen sentence end, grow at the end."""

from __future__ import annotations

from collections.abc import Sequence

from prompthone.optimizers.greater import GREATER

WORDS = {1: "Use", 2: " logic", 3: ".", 4: " and", 5: " think", 0: "<eos>"}
PLACEHOLDER = 0


class Words:
    """Only `decode` is consulted when choosing the next position."""

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(WORDS[i] for i in ids)


def advance(ids: list[int], pos: int, *, cut: bool, max_tokens: int = 48) -> tuple[list[int], int, bool]:
    return GREATER(max_prompt_tokens=max_tokens)._advance(Words(), ids, pos, PLACEHOLDER, cut=cut)  # type: ignore[arg-type]


def test_moves_right_inside_the_prompt() -> None:
    assert advance([1, 2, 4, 5], 1, cut=True) == ([1, 2, 4, 5], 2, False)


def test_a_newly_chosen_sentence_end_cuts_the_prompt_and_starts_over() -> None:
    assert advance([1, 3, 4, 5], 1, cut=True) == ([1, 3], 0, True)


def test_a_kept_sentence_end_inside_the_prompt_does_not_cut() -> None:
    assert advance([1, 3, 4, 5], 1, cut=False) == ([1, 3, 4, 5], 2, False)


def test_the_prompt_grows_by_a_placeholder_after_its_last_token() -> None:
    assert advance([1, 2], 1, cut=True) == ([1, 2, PLACEHOLDER], 2, False)


def test_a_prompt_that_ends_a_sentence_or_is_full_starts_over() -> None:
    assert advance([1, 2, 3], 2, cut=False) == ([1, 2, 3], 0, True)
    assert advance([1, 2, 4], 2, cut=True, max_tokens=3) == ([1, 2, 4], 0, True)
