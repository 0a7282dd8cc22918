"""GREATER's walk over prompt positions: left to right, grow at the end, start over after a sentence end; as in the
reference, a sentence end chosen inside the prompt does not cut it (`cut_at_sentence_end=True` is the former rule)."""

from __future__ import annotations

from collections.abc import Sequence

from prompthone.optimizers.greater import GREATER, placeholder_token

WORDS = {1: "Use", 2: " logic", 3: ".", 4: " and", 5: " think", 6: "?", 0: "_"}
PLACEHOLDER = 0


class Words:
    """Only `decode` is consulted when choosing the next position."""

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(WORDS[i] for i in ids)


def advance(ids: list[int], pos: int, *, cut: bool, max_tokens: int = 48,
            cut_at_sentence_end: bool = False) -> tuple[list[int], int, bool]:
    method = GREATER(max_prompt_tokens=max_tokens, cut_at_sentence_end=cut_at_sentence_end)
    return method._advance(Words(), ids, pos, PLACEHOLDER, cut=cut)  # type: ignore[arg-type]


def test_moves_right_inside_the_prompt() -> None:
    assert advance([1, 2, 4, 5], 1, cut=True) == ([1, 2, 4, 5], 2, False)


def test_a_newly_chosen_sentence_end_inside_the_prompt_does_not_cut_it() -> None:
    assert advance([1, 3, 4, 5], 1, cut=True) == ([1, 3, 4, 5], 2, False)


def test_the_former_rule_cuts_at_a_newly_chosen_sentence_end() -> None:
    assert advance([1, 3, 4, 5], 1, cut=True, cut_at_sentence_end=True) == ([1, 3], 0, True)
    assert advance([1, 3, 4, 5], 1, cut=False, cut_at_sentence_end=True) == ([1, 3, 4, 5], 2, False)


def test_the_prompt_grows_by_a_placeholder_after_its_last_token() -> None:
    assert advance([1, 2], 1, cut=True) == ([1, 2, PLACEHOLDER], 2, False)


def test_a_prompt_that_ends_a_sentence_or_is_full_starts_over() -> None:
    assert advance([1, 2, 3], 2, cut=False) == ([1, 2, 3], 0, True)
    assert advance([1, 2, 4], 2, cut=True, max_tokens=3) == ([1, 2, 4], 0, True)


def test_only_a_full_stop_ends_the_prompt() -> None:
    assert advance([1, 2, 6], 2, cut=True) == ([1, 2, 6, PLACEHOLDER], 3, False)


class Encoder:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def encode(self, text: str) -> list[int]:
        assert text == "_"
        return self.ids


def test_the_placeholder_is_the_references_underscore_token() -> None:
    assert placeholder_token(Encoder([17])) == 17  # type: ignore[arg-type]
    assert placeholder_token(Encoder([1, 17])) == 17  # type: ignore[arg-type]  # after a BOS: its last token
