"""Asking the meta model for prompt text: one request per meta prompt, the shared reply parser, the quote filter.

Every instruction-proposing method (APE, APO, OPRO, GEPA, MIPRO's proposer) asks the same way, so they share how a
reply becomes usable text and how example text is kept out of it: a reply item that quotes an example the meta
model was shown is dropped, because example text must never leak into a prompt as if it were an instruction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import GenerationRequest, Message
from prompthone.prompts.meta import INSTRUCTION_CHARS, QUOTE_RUN, clean_instruction, usable_items


class _Example(Protocol):
    @property
    def input(self) -> str: ...

    @property
    def target(self) -> str: ...


def quoted_texts(examples: Iterable[_Example]) -> list[str]:
    """The texts of `examples` (inputs and targets) that a proposed prompt may not quote."""
    return [t for e in examples for t in (e.input, e.target)]


@dataclass(frozen=True)
class MetaReply:
    """One meta-model reply: its text and the usable items parsed out of it (already quote-filtered)."""

    text: str
    items: tuple[str, ...]


def ask_meta(model: MeteredModel, rng: random.Random, texts: Sequence[str], *, max_tokens: int,
             temperature: float, forbidden: Sequence[str], top_p: float = 1.0, instruction: bool = True,
             whole_reply: bool = False, prepare: Callable[[str], str] | None = None, retry_once: bool = False,
             seeds: Sequence[int] | None = None, stop: Sequence[str] = (),
             max_chars: int | None = INSTRUCTION_CHARS, quote_run: int = QUOTE_RUN) -> list[MetaReply]:
    """Ask `model` once per text (one user turn each), sent as one batch, and parse every reply.

    Each request samples with its own seed: `seeds`, or drawn in order from `rng` (a method that interleaves the
    seeds with other draws, as APE does, draws them itself). A reply is parsed by the shared parser
    (`usable_items`: tagged items, else the first paragraph; `clean_instruction` of the whole reply with
    `whole_reply`), after `prepare`, and its items that quote `forbidden` are dropped. With `retry_once`, when no
    reply gave an item, the first text is asked once more and its reply appended. `stop` ends a reply early (a
    method that reads only the first tagged item stops at its end tag: the same item, without the tokens after).
    Each item is cut to `max_chars` (None: kept whole, for methods whose published prompts are long), and an
    item quoting `quote_run` words in a row of a `forbidden` text is dropped.
    """
    replies: list[MetaReply] = []
    for attempt in range(2 if retry_once else 1):
        asked = texts if attempt == 0 else texts[:1]
        drawn = list(seeds) if attempt == 0 and seeds is not None else [rng.randrange(2**31) for _ in asked]
        requests = [GenerationRequest((Message("user", text),), max_tokens=max_tokens, temperature=temperature,
                                      top_p=top_p, stop=tuple(stop), seed=seed)
                    for text, seed in zip(asked, drawn, strict=True)]
        for completion in model.generate(requests) if requests else ():
            reply = prepare(completion.text) if prepare is not None else completion.text
            if whole_reply:
                cleaned = clean_instruction(reply, forbidden=forbidden, max_chars=max_chars, quote_run=quote_run)
                items: tuple[str, ...] = (cleaned,) if cleaned is not None else ()
            else:
                items = tuple(usable_items(reply, forbidden, instruction=instruction, max_chars=max_chars,
                                           quote_run=quote_run))
            replies.append(MetaReply(completion.text, items))
        if any(r.items for r in replies):
            break
    return replies
