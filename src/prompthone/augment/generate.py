"""Few-shot generation of complements (or rewrites) per category from the golden pairs (PAS §3.2).

The golden pairs of the prompt's category are shown as earlier chat turns under the design's system message, so
the generator sees exactly the format the fine-tuned model will be trained on: system, user prompt, assistant
output. The first round is greedy; regeneration rounds sample (a different seed per round) so a rejected pair
gets a genuinely different candidate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from prompthone.augment.designs import Design
from prompthone.augment.pairs import Pair
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import GenerationRequest, Message

SHOTS_PER_CATEGORY = 2
REGENERATION_TEMPERATURE = 0.8
_LABEL = re.compile(r"^\s*(complement(ary prompt)?|guidance|rewritten prompt|rewrite|prompt)\s*:\s*", re.IGNORECASE)
_ARTIFACTS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "\nuser:", "\nUser:", "\nassistant:", "\nAssistant:")


def few_shot_messages(design: Design, prompt: str, shots: Sequence[Pair]) -> tuple[Message, ...]:
    """System message, then each golden pair as a user/assistant exchange, then the prompt to complement."""
    turns: list[Message] = [Message("system", design.system)]
    for shot in shots:
        turns += [Message("user", shot.prompt.strip()), Message("assistant", shot.output.strip())]
    turns.append(Message("user", prompt.strip()))
    return tuple(turns)


def shots_for(category: str, golden: Mapping[str, Sequence[Pair]]) -> list[Pair]:
    """The golden pairs shown for a category: its own, else the first pair of each category as a fallback."""
    own = list(golden.get(category, ()))[:SHOTS_PER_CATEGORY]
    return own or [pairs[0] for pairs in golden.values() if pairs][:SHOTS_PER_CATEGORY]


def clean_output(text: str) -> str:
    """The generated complement without chat artifacts, a leading 'Complement:' label or surrounding quotes."""
    for marker in _ARTIFACTS:
        text = text.split(marker, 1)[0]
    text = _LABEL.sub("", text.strip())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1]
    return text.strip()


def _seed(key: str, round_: int) -> int:
    return int(hashlib.sha256(f"{key}:{round_}".encode()).hexdigest()[:8], 16)


def generation_request(design: Design, prompt: str, shots: Sequence[Pair], *, key: str,
                       round_: int) -> GenerationRequest:
    """Round 0 greedy; round r > 0 sampled with a seed derived from the prompt's id and r (repeatable)."""
    sampled = round_ > 0
    return GenerationRequest(messages=few_shot_messages(design, prompt, shots), max_tokens=design.max_tokens,
                             temperature=REGENERATION_TEMPERATURE if sampled else 0.0,
                             seed=_seed(key, round_) if sampled else None)


def generate_outputs(model: MeteredModel, design: Design, items: Sequence[tuple[str, str, str]],
                     golden: Mapping[str, Sequence[Pair]], round_: int = 0) -> list[str]:
    """One cleaned output per (key, prompt, category) item."""
    requests = [generation_request(design, prompt, shots_for(category, golden), key=key, round_=round_)
                for key, prompt, category in items]
    return [clean_output(c.text) for c in model.generate(requests)]
