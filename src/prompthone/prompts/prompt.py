"""A prompt is data (instruction, system message, demos, fixed output format) rendered by one function.

Optimizers edit `Prompt` objects with `dataclasses.replace`, never raw strings with magic markers, so an
edit to the instruction can never touch the output-format line or the demos by accident.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from prompthone.models.base import Message
from prompthone.tasks.example import Example

INPUT_PREFIX = "Input:"
OUTPUT_PREFIX = "Answer:"


@dataclass(frozen=True)
class Prompt:
    """The editable parts of a prompt. `output_format` is owned by the task, not by optimizers."""

    instruction: str
    system: str | None = None
    demos: tuple[Example, ...] = ()
    output_format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "system": self.system,
            "demos": [{"input": d.input, "target": d.target} for d in self.demos],
            "output_format": self.output_format,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        demos = tuple(Example(str(d["input"]), str(d["target"])) for d in data.get("demos", ()))
        return cls(instruction=str(data.get("instruction", "")), system=data.get("system"),
                   demos=demos, output_format=str(data.get("output_format", "")))

    def key(self) -> str:
        """A canonical string identity, used to dedupe candidates."""
        d = asdict(self)
        d["demos"] = [(x.input, x.target) for x in self.demos]
        return json.dumps(d, sort_keys=True)


def render_user_message(prompt: Prompt, example_input: str) -> str:
    """The text of the user turn: instruction, output format, demos, then the example to answer."""
    parts: list[str] = []
    if prompt.instruction.strip():
        parts.append(prompt.instruction.strip())
    if prompt.output_format.strip():
        parts.append(prompt.output_format.strip())
    for demo in prompt.demos:
        parts.append(f"{INPUT_PREFIX} {demo.input}\n{OUTPUT_PREFIX} {demo.target}")
    parts.append(f"{INPUT_PREFIX} {example_input}\n{OUTPUT_PREFIX}")
    return "\n\n".join(parts)


def render(prompt: Prompt, example_input: str) -> tuple[Message, ...]:
    """Chat messages for one example. The model's own chat template turns them into tokens."""
    messages: list[Message] = []
    if prompt.system:
        messages.append(Message("system", prompt.system))
    messages.append(Message("user", render_user_message(prompt, example_input)))
    return tuple(messages)
