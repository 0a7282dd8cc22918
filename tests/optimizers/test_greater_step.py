"""One GREATER step on a word-level tokenizer over a tiny random Llama: what the step wires together (the initial
prompt and placeholder, the previous token left out, the reasoning seen at a placeholder, the shortlist over every
candidate, the answer read at temperature 0.2) as the reference implementation has it."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prompthone.models.base import Message  # noqa: E402
from prompthone.models.torch_model import causal_lm_logits  # noqa: E402
from prompthone.optimizers.base import Candidate  # noqa: E402
from prompthone.optimizers.greater import DEFAULT_INIT, GREATER, _Search, format_extractor  # noqa: E402
from prompthone.optimizers.greater_loss import build_sequence, losses  # noqa: E402
from prompthone.prompts.prompt import DEFAULT_EXTRACTOR, Prompt  # noqa: E402
from prompthone.tasks.example import Example  # noqa: E402

VOCAB = 160
PIECES = re.compile(r"\n| ?[A-Za-z]+| ?[^A-Za-z\s]| ")
#: words the model may propose (allowed tokens), seeded into the vocabulary before the allowed mask is built
WORDS = ("Use", "Think", "Be", " proper", " logical", " reasoning", " and", " think", " step", " by", " careful",
         " clear", " now", " the", " answer", " logic", " first", " then", " check", " it", ".", ",")
TRAIN = [Example("two plus two", "yes"), Example("one plus one", "no"), Example("three plus one", "yes")]


class WordWhiteBox:
    """A white box whose tokens are words (with their leading space) and punctuation, over a random Llama."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
        self.module = transformers.LlamaForCausalLM(config).double().eval()
        self.module.requires_grad_(False)
        self.pieces: list[str] = []
        self.index: dict[str, int] = {}
        self.tokenizer = self
        for word in WORDS:
            self.encode(word)

    def encode(self, text: str) -> list[int]:
        pieces = PIECES.findall(text)
        assert "".join(pieces) == text
        for piece in pieces:
            if piece not in self.index:
                assert len(self.pieces) < VOCAB, "the test vocabulary is full"
                self.index[piece] = len(self.pieces)
                self.pieces.append(piece)
        return [self.index[p] for p in pieces]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.pieces[i] if i < len(self.pieces) else "" for i in ids)

    def render_chat(self, messages: Sequence[Message], prefill: str = "") -> str:
        return "".join(f"<{m.role}>\n{m.content}\n" for m in messages) + "<assistant>\n" + prefill

    @property
    def embedding_matrix(self) -> Any:
        return self.module.get_input_embeddings().weight

    def logits(self, **kwargs: Any) -> Any:
        return causal_lm_logits(self.module, **kwargs)


@dataclass
class Evaluator:
    """Reasoning is a fixed sentence; records the instruction each reasoning pass saw."""

    seen: list[str] = field(default_factory=list)

    def answer_contexts(self, prompt: Prompt, examples: Sequence[Example]) -> list[Any]:
        self.seen.append(prompt.instruction)
        return [SimpleNamespace(prefill=f"It is so. {prompt.extractor}") for _ in examples]


def _context(wb: WordWhiteBox) -> Any:
    task = SimpleNamespace(labels=("yes", "no"), train=tuple(TRAIN), dev=tuple(TRAIN), instruction="Answer.")

    def new_candidate(state: Any, prompt: Prompt, **kwargs: Any) -> Candidate:
        return Candidate(len(state.pool), prompt, kwargs.get("parent"), kwargs["origin"], 0)

    return SimpleNamespace(task=task, white_box=wb, rng=random.Random(0), seed_prompt=Prompt("Answer."),
                           evaluator=Evaluator(), new_candidate=new_candidate,
                           score=lambda cand, examples, key: None)


def _search(wb: WordWhiteBox, text: str, pos: int, *, placeholder: bool = False) -> _Search:
    ids = wb.encode(text)
    holder = wb.encode("_")[-1]
    if placeholder:
        ids.append(holder)
    seed = Candidate(0, Prompt("Answer."), None, "seed", 0)
    return _Search(wb, ids, pos, holder, list(TRAIN), list(TRAIN), seed, initial_len=len(ids))  # type: ignore[arg-type]


def _step(method: GREATER, wb: WordWhiteBox, search: _Search) -> tuple[dict[str, Any], Any]:
    ctx = _context(wb)
    state = SimpleNamespace(step=0, pool=[search.current], extra={"greater": search}, find=lambda p: None)
    method.propose(ctx, state)  # type: ignore[arg-type]
    return search.event, ctx


SMALL = {"group_size": 2, "topq": 2, "n_train": 3, "batch_size": 4, "reasoning_tokens": 8}


def test_start_takes_the_references_initial_prompt_and_underscore_placeholder() -> None:
    wb = WordWhiteBox()
    ctx = _context(wb)
    state = SimpleNamespace(pool=[Candidate(0, Prompt("Answer."), None, "seed", 0)], extra={}, frontier=[],
                            find=lambda p: None)
    GREATER(**SMALL).start(ctx, state)  # type: ignore[arg-type]
    search = state.extra["greater"]
    assert wb.decode(search.ids) == DEFAULT_INIT
    assert DEFAULT_INIT.endswith("proper logical reasoning and think step by step. Finally give the actual correct "
                                 "answer.")
    assert search.placeholder == wb.encode("_")[-1] and search.initial_len == len(search.ids)


def test_the_defaults_are_the_references() -> None:
    knobs = GREATER.knobs()
    assert knobs["reasoning_tokens"] == 1024 and knobs["k_step"] == 2 and knobs["answer_temperature"] == 0.2
    assert knobs["selection"] == "errors" and knobs["selection_lam"] == 0.02 and knobs["keep_current"] is False
    assert knobs["exclude_previous"] is True and knobs["take_sentence_end"] is True
    assert knobs["init"] == DEFAULT_INIT and knobs["extractor"] == "auto"
    assert GREATER.departures


def test_the_extractor_carries_the_references_format_hint() -> None:
    assert format_extractor(("yes", "no")) == "Therefore, the final answer (use exact format: 'yes' or 'no') is"
    assert format_extractor(None) == DEFAULT_EXTRACTOR
    wb = WordWhiteBox()
    search = _search(wb, "Use logic.", 0)
    prompt = GREATER()._prompt(_context(wb), search, search.ids)  # type: ignore[arg-type]
    assert prompt.extractor == format_extractor(("yes", "no")) and prompt.reasoning_tokens == 1024
    assert GREATER(extractor="Thus:")._prompt(_context(wb), search, search.ids).extractor == "Thus:"  # type: ignore[arg-type]


def test_the_previous_positions_token_is_never_a_new_candidate() -> None:
    wb = WordWhiteBox()
    search = _search(wb, "Use proper logical reasoning and think.", 2)
    previous, current = search.ids[1], search.ids[2]
    # every allowed token is a candidate (k covers them all) but the one at the previous position
    method = GREATER(**SMALL, top_k=VOCAB, min_candidates=VOCAB, shortlist=1)
    event, _ = _step(method, wb, search)
    ids = {c["id"] for c in event["candidates"]}
    assert previous not in ids and current in ids and wb.index[" careful"] in ids
    event, _ = _step(GREATER(**SMALL, top_k=VOCAB, min_candidates=VOCAB, shortlist=1, exclude_previous=False),
                     wb, _search(wb, "Use proper logical reasoning and think.", 2))
    assert previous in {c["id"] for c in event["candidates"]}  # the former rule


def test_the_shortlist_ranks_the_current_token_with_the_others_and_the_lowest_error_loss_wins() -> None:
    wb = WordWhiteBox()
    search = _search(wb, "Use proper logical reasoning and think.", 1)
    method = GREATER(**SMALL, min_candidates=4, shortlist=100)  # every candidate measured
    event, _ = _step(method, wb, search)
    shortlisted = [s["token"] for s in event["shortlist"]]
    assert event["current_token"] in shortlisted  # not set apart: measured like any other candidate
    by_gradient = sorted(event["candidates"], key=lambda c: c["gradient"])
    assert shortlisted == [c["token"] for c in by_gradient]  # most negative first
    for s in event["shortlist"]:
        assert s["loss"] == pytest.approx(s["errors"] + 0.02 * s["nll"], abs=1e-5)
    best = min(s["loss"] for s in event["shortlist"])
    assert event["chosen"] == [s["token"] for s in event["shortlist"] if s["loss"] == best][-1]  # later on a tie


def test_a_placeholder_step_reasons_with_the_placeholder_and_never_keeps_it() -> None:
    wb = WordWhiteBox()
    search = _search(wb, "Use logic", 2, placeholder=True)
    event, ctx = _step(GREATER(**SMALL, min_candidates=3), wb, search)
    assert ctx.evaluator.seen[0] == "Use logic_"  # the prompt as it stands, placeholder included
    assert event["placeholder"] and event["current_loss"] is None
    assert event["chosen"] != "_" and "_" not in [s["token"] for s in event["shortlist"]]
    assert event["reason"].startswith("grew the prompt")


def test_the_answer_is_read_at_temperature_point_two() -> None:
    wb = WordWhiteBox()
    search = _search(wb, "Use proper logical reasoning and think.", 1)
    method = GREATER(**SMALL, min_candidates=3)
    event, _ = _step(method, wb, search)
    prompt = method._prompt(_context(wb), search, search.ids)  # type: ignore[arg-type]
    # the step moved on: rebuild the sequences of the prompt it started from
    start = _search(wb, "Use proper logical reasoning and think.", 1)
    seqs = [build_sequence(wb, prompt, start.ids, e.input, f"It is so. {prompt.extractor}", e.target)  # type: ignore[arg-type]
            for e in TRAIN]
    cold = losses(wb, seqs, temperature=0.2)  # type: ignore[arg-type]
    assert event["current_loss"]["ce"] == pytest.approx(cold.mean_ce, abs=1e-5)
    assert event["current_loss"]["ce"] != pytest.approx(losses(wb, seqs).mean_ce, abs=1e-3)  # type: ignore[arg-type]
