"""Two-stage answering (reason, then answer after the extractor) and prompts with the instruction after the input.

A recording fake checks exactly which requests the evaluator sends; the real-model check of the same path is
tests/e2e/test_greater_e2e.py (reasoning prompts evaluated on llama.cpp and torch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    Message,
    ScoringRequest,
)
from prompthone.prompts.prompt import Prompt, answer_prefill, render, render_user_message
from prompthone.tasks.example import Example, Task


class RecordingModel:
    """Reasons 'R<n>' for the n-th generation and prefers the label 'yes' after a prefill, 'no' without one."""

    def __init__(self, *, prefill: bool) -> None:
        self.id = f"fake:recording:{prefill}"
        self.capabilities = Capabilities(generate=True, score=True, prefill=prefill)
        self.generated: list[GenerationRequest] = []
        self.scored: list[ScoringRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.generated.append(r)
            yield i, Completion(f" R{len(self.generated)} ", prompt_tokens=5, completion_tokens=2)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.scored.append(r)
            after_reasoning = bool(r.prefill) or r.messages[-1].content == "So:"
            yield i, ContinuationScores((-0.1, -3.0) if after_reasoning else (-3.0, -0.1), prompt_tokens=5)

    def close(self) -> None:
        return None


TASK = Task("t", train=(), dev=(Example("a?", "yes"), Example("b?", "yes")), test=(), metric="label_accuracy",
            labels=("yes", "no"))


def _evaluator(model: RecordingModel) -> Evaluator:
    return Evaluator(TASK, MeteredModel(model, meter=BudgetMeter(None)))


def test_a_reasoning_prompt_reads_the_answer_after_its_reasoning_and_extractor() -> None:
    model = RecordingModel(prefill=True)
    prompt = Prompt("Think.", instruction_position="after", reasoning_tokens=7, extractor="So:")
    result = _evaluator(model).evaluate(prompt, TASK.dev)
    assert result.score == 1.0
    assert [r.max_tokens for r in model.generated] == [7, 7]
    assert [r.prefill for r in model.scored] == ["R1 So:", "R2 So:"]
    assert all(r.messages == g.messages for r, g in zip(model.scored, model.generated, strict=True))
    assert result.examples[0].raw.startswith("R1\n→ yes=")


def test_without_prefill_the_extractor_goes_in_a_second_user_turn() -> None:
    model = RecordingModel(prefill=False)
    prompt = Prompt("Think.", instruction_position="after", reasoning_tokens=7, extractor="So:")
    result = _evaluator(model).evaluate(prompt, TASK.dev)
    assert result.score == 1.0
    turns = model.scored[0].messages
    assert [m.role for m in turns][-3:] == ["user", "assistant", "user"]
    assert turns[-2].content == "R1" and turns[-1].content == "So:" and model.scored[0].prefill == ""


def test_a_plain_prompt_sends_no_reasoning_and_no_prefill() -> None:
    model = RecordingModel(prefill=True)
    assert _evaluator(model).evaluate(Prompt("Answer."), TASK.dev).score == 0.0
    assert model.generated == [] and all(r.prefill == "" for r in model.scored)


def test_the_instruction_after_the_input_sits_between_input_and_answer_cue() -> None:
    prompt = Prompt("Think first.", output_format="Say yes or no.", instruction_position="after")
    assert render_user_message(prompt, "Is it?") == "Say yes or no.\n\nInput: Is it?\nThink first.\nAnswer:"
    assert render_user_message(Prompt("Think first."), "Is it?") == "Think first.\n\nInput: Is it?\nAnswer:"


def test_prefill_enters_the_cache_key_only_when_set() -> None:
    messages = (Message("user", "hi"),)
    assert "prefill" not in GenerationRequest(messages).payload()
    assert "prefill" not in ScoringRequest(messages, ("a",)).payload()
    assert GenerationRequest(messages, prefill="x").payload()["prefill"] == "x"
    assert answer_prefill("  because.  ", "So") == "because. So" and answer_prefill(" ", "So") == "So"


def test_new_prompt_fields_round_trip_and_are_validated() -> None:
    prompt = Prompt("p", instruction_position="after", reasoning_tokens=12, extractor="Thus")
    assert Prompt.from_dict(prompt.to_dict()) == prompt
    assert Prompt.from_dict({"instruction": "old file"}).instruction_position == "before"
    with pytest.raises(ConfigError, match="instruction_position"):
        Prompt("p", instruction_position="middle")
    with pytest.raises(ConfigError, match="reasoning_tokens"):
        Prompt("p", reasoning_tokens=-1)
    assert render(prompt, "x")[-1].content.endswith("x\np\nAnswer:")


def test_an_answer_prefix_starts_the_reply_before_the_answer_and_before_any_reasoning() -> None:
    model = RecordingModel(prefill=True)
    assert _evaluator(model).evaluate(Prompt("Answer.", answer_prefix="Captain's log:"), TASK.dev).score == 1.0
    assert [r.prefill for r in model.scored] == ["Captain's log:", "Captain's log:"] and model.generated == []

    model = RecordingModel(prefill=True)
    prompt = Prompt("Think.", reasoning_tokens=7, extractor="So:", answer_prefix="Log:")
    _evaluator(model).evaluate(prompt, TASK.dev)
    assert [r.prefill for r in model.generated] == ["Log:", "Log:"]  # the reasoning continues the prefix
    assert [r.prefill for r in model.scored] == ["Log: R1 So:", "Log: R2 So:"]


def test_an_answer_prefix_on_a_backend_that_cannot_prefill_is_a_clear_error() -> None:
    model = RecordingModel(prefill=False)
    with pytest.raises(ConfigError, match=r"answer_prefix needs a backend that can continue .*fake:recording:False"):
        _evaluator(model).evaluate(Prompt("Answer.", answer_prefix="Log:"), TASK.dev)
    assert model.scored == []  # refused before any call


def test_an_answer_prefix_round_trips_and_leaves_other_prompts_records_and_keys_as_they_were() -> None:
    prompt = Prompt("p", answer_prefix="Log:")
    assert Prompt.from_dict(prompt.to_dict()) == prompt and prompt.to_dict()["answer_prefix"] == "Log:"
    assert "answer_prefix" not in Prompt("p").to_dict() and "answer_prefix" not in Prompt("p").key()
    assert prompt.key() != Prompt("p").key()  # a prefix makes another candidate
