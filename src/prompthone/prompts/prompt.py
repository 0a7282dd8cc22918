"""A prompt is data (instruction, system message, demos, fixed output format) rendered by one function.

Optimizers edit `Prompt` objects with `dataclasses.replace`, never raw strings with magic markers, so an
edit to the instruction can never touch the output-format line or the demos by accident.

Every part is text, never a template: rendering joins the parts and never calls `str.format`, so braces
(`{input}`, `{}`, `{0}`, `{{`, a lone `{`) in an instruction, a system message, a demo or an example are kept
as they are, and no user text is ever substituted into another. Example text that looks like the prompt's
own structure ('Input:', 'Answer:', chat-template tokens, "ignore previous instructions") is data too: it
goes into the user turn only, and the real answer cue always comes after it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from prompthone.errors import ConfigError
from prompthone.models.base import Message
from prompthone.prompts.calibration import Calibration
from prompthone.tasks.example import Example

INPUT_PREFIX = "Input:"
OUTPUT_PREFIX = "Answer:"
#: What follows the model's reasoning when a prompt reasons first (Kojima et al.'s answer extraction; GREATER's
#: p_extract without its format hint: the answer is read by label scoring or parsing, not by a fixed format).
DEFAULT_EXTRACTOR = "Therefore, the final answer is"
POSITIONS = ("before", "after")


@dataclass(frozen=True)
class Prompt:
    """The editable parts of a prompt. `output_format` is owned by the task, not by optimizers.

    `instruction_position="after"` puts the instruction between the example's input and the answer cue
    (GREATER optimizes a prompt p that follows the input x). `reasoning_tokens > 0` makes the model reason
    first, up to that many tokens, and then answer after `extractor` (two-stage answering: the answer is
    read where the extractor ends). Both travel with the prompt, so a prompt found on one backend is
    evaluated the same way on every other. So does `calibration`, the label prior divided out of label scores
    (`prompts.calibration`): it changes the answer read, never the text sent. `answer_prefix` is text the model's
    reply starts with (written for it, as a prefill), before any reasoning and the answer: the "answer prefix"
    DSPy optimized beside the system message in Battle & Gollapudi (2024); it needs a backend that can continue a
    partly written reply.
    """

    instruction: str
    system: str | None = None
    demos: tuple[Example, ...] = ()
    output_format: str = ""
    instruction_position: str = "before"
    reasoning_tokens: int = 0
    extractor: str = DEFAULT_EXTRACTOR
    calibration: Calibration | None = None
    answer_prefix: str = ""

    def __post_init__(self) -> None:
        if self.instruction_position not in POSITIONS:
            raise ConfigError(f"instruction_position must be one of {POSITIONS}, got {self.instruction_position!r}")
        if self.reasoning_tokens < 0:
            raise ConfigError(f"reasoning_tokens must be ≥ 0, got {self.reasoning_tokens}")

    @property
    def reasons(self) -> bool:
        """Whether the model reasons before answering (two-stage answering)."""
        return self.reasoning_tokens > 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "instruction": self.instruction,
            "system": self.system,
            "demos": [{"input": d.input, "target": d.target} for d in self.demos],
            "output_format": self.output_format,
            "instruction_position": self.instruction_position,
            "reasoning_tokens": self.reasoning_tokens,
            "extractor": self.extractor,
        }
        if self.calibration is not None:  # only then: an uncalibrated prompt's record is as it always was
            data["calibration"] = self.calibration.to_dict()
        if self.answer_prefix:  # likewise
            data["answer_prefix"] = self.answer_prefix
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        demos = tuple(Example(str(d["input"]), str(d["target"])) for d in data.get("demos", ()))
        return cls(instruction=str(data.get("instruction", "")), system=data.get("system"),
                   demos=demos, output_format=str(data.get("output_format", "")),
                   instruction_position=str(data.get("instruction_position", "before")),
                   reasoning_tokens=int(data.get("reasoning_tokens", 0)),
                   extractor=str(data.get("extractor", DEFAULT_EXTRACTOR)),
                   calibration=Calibration.from_dict(data["calibration"]) if data.get("calibration") else None,
                   answer_prefix=str(data.get("answer_prefix") or ""))

    def key(self) -> str:
        """A canonical string identity of what the model is sent, used to dedupe candidates: a prompt and its
        calibrated form are one candidate (its calibration is estimated from the text, once per run)."""
        d = asdict(self)
        d.pop("calibration")
        if not self.answer_prefix:  # the key of a prompt without one is what it was before answer prefixes existed
            d.pop("answer_prefix")
        d["demos"] = [(x.input, x.target) for x in self.demos]
        return json.dumps(d, sort_keys=True)


def render_user_message(prompt: Prompt, example_input: str) -> str:
    """The text of the user turn: instruction, output format, demos, then the example to answer.

    With `instruction_position="after"` the instruction sits on its own line between the example's input and
    the answer cue instead of first. Every part is inserted literally (see the module docstring); the example's
    input is last but for the answer cue, so an 'Answer:' inside it can never be the cue the model answers.
    """
    instruction = prompt.instruction.strip()
    before = prompt.instruction_position == "before"
    parts: list[str] = []
    if instruction and before:
        parts.append(instruction)
    if prompt.output_format.strip():
        parts.append(prompt.output_format.strip())
    for demo in prompt.demos:
        parts.append(f"{INPUT_PREFIX} {demo.input}\n{OUTPUT_PREFIX} {demo.target}")
    after = f"{instruction}\n" if instruction and not before else ""
    parts.append(f"{INPUT_PREFIX} {example_input}\n{after}{OUTPUT_PREFIX}")
    return "\n\n".join(parts)


def render(prompt: Prompt, example_input: str) -> tuple[Message, ...]:
    """Chat messages for one example: the system message (if any), then one user turn holding everything else.

    The model's own chat template turns them into tokens; the example's text is in the user turn only, however
    it is worded (a backend must keep template tokens inside message text as plain text: see the backends).
    """
    messages: list[Message] = []
    if prompt.system:
        messages.append(Message("system", prompt.system))
    messages.append(Message("user", render_user_message(prompt, example_input)))
    return tuple(messages)


def answer_prefill(reasoning: str, extractor: str) -> str:
    """The reply so far when the answer is read after reasoning: the reasoning, a space, the extractor.

    One function for the evaluator and for GREATER's loss, so that both read the answer at the same tokens.
    """
    reasoning = reasoning.strip()
    return f"{reasoning} {extractor}" if reasoning else extractor
