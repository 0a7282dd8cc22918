"""What an augmenter writes and how it meets the user's prompt: a PAS complement or a rewrite.

PAS (Zheng et al., 2024, §3) appends a short *complementary* prompt (guidance, never the answer) to the user's
prompt, which stays as written. `rewrite` is a BPO-style rewriter: like BPO (Cheng et al., 2023) it *replaces* the
prompt with a rewritten one, but it is built and trained by prompthone's own pipeline (our golden pairs, our
generation and critic, LoRA on the embedded model), not Cheng et al.'s BPO model or data. Both are trained and
served the same way (a chat model given the user's prompt under a fixed system message), so one `Design` per
method is all the pipeline, the trainer, the augmenter and the evaluation need to tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from prompthone.errors import ConfigError
from prompthone.models.adapters import RENAMED_DESIGNS
from prompthone.models.base import Message


@dataclass(frozen=True)
class Design:
    """One augmentation method: the system message its model is trained and run under, and how its output is used.

    `replaces` is False for PAS (user prompt + "\\n\\n" + complement) and True for `rewrite` (the rewrite alone).
    """

    name: str
    system: str
    replaces: bool
    max_tokens: int = 96

    def messages(self, prompt: str) -> tuple[Message, ...]:
        """The chat the augmenting model sees for a user prompt (training and inference alike)."""
        return (Message("system", self.system), Message("user", prompt.strip()))

    def apply(self, prompt: str, output: str) -> str:
        """The prompt the target model answers: the user's prompt with the complement, or the rewrite."""
        output = output.strip()
        if not output:
            return prompt
        return output if self.replaces else f"{prompt.rstrip()}\n\n{output}"


PAS = Design(
    name="pas",
    system=("You write a short complementary prompt for the user's request: guidance that helps an assistant "
            "answer it well (what to cover, the steps, the format). Never answer the request itself. "
            "Use the request's language. At most 40 words."),
    replaces=False,
)

REWRITE = Design(
    name="rewrite",
    system=("You rewrite the user's request into a clearer, more detailed prompt that keeps its intent and "
            "language. Do not answer it. Reply with the rewritten prompt only."),
    replaces=True,
    max_tokens=128,
)

DESIGNS = {d.name: d for d in (PAS, REWRITE)}
#: Old design names still accepted → current name (`models.adapters.RENAMED_DESIGNS`: adapters read it too).
RENAMED = RENAMED_DESIGNS


def design_name(name: str) -> str:
    """`name` normalised (stripped, lower case) with an old name mapped to its current one ('bpo' → 'rewrite')."""
    key = name.strip().lower()
    return RENAMED.get(key, key)


def get_design(name: str) -> Design:
    """The design called `name` ('pas' or 'rewrite'; the old name 'bpo' still means 'rewrite')."""
    try:
        return DESIGNS[design_name(name)]
    except KeyError:
        raise ConfigError(f"unknown augmentation design {name!r}; expected one of {sorted(DESIGNS)}") from None
