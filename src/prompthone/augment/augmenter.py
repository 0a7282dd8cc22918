"""The plug-in: complement (or rewrite) a user's prompt with one model, answer it with another (PAS §3.3).

The complement model and the target model are independent `Model`s: a fine-tuned SmolLM2 adapter on torch can
augment prompts for a 7B model behind an OpenAI-compatible URL, or the other way round. Calls go through the
call cache (a re-run answers from disk) and a budget meter (so a spend cap applies), like every other call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prompthone.augment.designs import PAS, Design, get_design
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import GenerationRequest, Message, Model
from prompthone.run.session import Session

DEFAULT_ANSWER_TOKENS = 256


@dataclass(frozen=True)
class AugmentedAnswer:
    """One answered prompt: what the augmenter wrote, the prompt the target saw, the target's answer, and the id
    of the complement model that wrote `output`."""

    prompt: str
    output: str
    augmented_prompt: str
    answer: str
    complement_model: str = ""


def answer_requests(prompts: Sequence[str], *, max_tokens: int = DEFAULT_ANSWER_TOKENS,
                    system: str | None = None) -> list[GenerationRequest]:
    """Greedy answer requests for plain user prompts (the same with and without augmentation, so only the prompt
    differs between the two answers a judge compares)."""
    head = (Message("system", system),) if system else ()
    return [GenerationRequest(messages=(*head, Message("user", p)), max_tokens=max_tokens) for p in prompts]


class Augmenter:
    """`complement_model` writes the complement (or rewrite) for each prompt; `target_model` answers the result.

    >>> aug = Augmenter(make_model("adapter:adapters/pas"), make_model("local"))   # doctest: +SKIP
    >>> aug.answer(["write a haiku about rain"])[0].answer                    # doctest: +SKIP
    """

    def __init__(self, complement_model: Model | MeteredModel, target_model: Model | MeteredModel, *,
                 design: Design | str = PAS, cache: CallCache | None = None, session: Session | None = None,
                 answer_tokens: int = DEFAULT_ANSWER_TOKENS, temperature: float = 0.0, seed: int = 0) -> None:
        self.design = get_design(design) if isinstance(design, str) else design
        session = session if session is not None else Session(cache=cache)
        self.complement_model = session.model(complement_model, "meta", cache=cache)
        self.target_model = session.model(target_model, "task", cache=cache)
        self.answer_tokens = answer_tokens
        self.temperature = temperature
        self.seed = seed

    def complements(self, prompts: Sequence[str]) -> list[str]:
        """What the augmenting model writes for each prompt (greedy unless a temperature was set)."""
        requests = [GenerationRequest(messages=self.design.messages(p), max_tokens=self.design.max_tokens,
                                      temperature=self.temperature, seed=self.seed if self.temperature else None)
                    for p in prompts]
        return [c.text.strip() for c in self.complement_model.generate(requests)]

    def augment(self, prompts: Sequence[str]) -> list[tuple[str, str]]:
        """(output, augmented prompt) per prompt: the complement appended, or the rewrite in its place."""
        outputs = self.complements(prompts)
        return [(o, self.design.apply(p, o)) for p, o in zip(prompts, outputs, strict=True)]

    def answer(self, prompts: Sequence[str]) -> list[AugmentedAnswer]:
        """Augment each prompt, then let the target model answer it."""
        augmented = self.augment(prompts)
        answers = self.target_model.generate(answer_requests([a for _, a in augmented], max_tokens=self.answer_tokens))
        return [AugmentedAnswer(p, o, a, c.text.strip(), self.complement_model.id)
                for p, (o, a), c in zip(prompts, augmented, answers, strict=True)]
