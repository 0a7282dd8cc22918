"""A found prompt in the forms users deploy it in, and each form rendered back (for `export --verify`).

Why this is not trivial (DSPy issue 8042: an instruction and demos taken out of MIPROv2 scored 28.5% against the
47% of the original instruction when sent directly): a found prompt is more than an instruction. It is the system
message, the user turn prompthone renders (instruction, output format, demos as "Input:/Answer:" pairs, the input,
the answer cue), and how the answer is read (label scoring, a calibration, reasoning first, an answer prefix).
Every form here carries the exact text prompthone sends, with one slot for the input, so a client that fills the
slot sends what prompthone scored; what a form cannot carry is in its settings and in one-line notes saying what
the client must apply itself. Demos stay inside the user turn (that is how the prompt was optimized and scored);
turning them into separate chat turns would be another prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prompthone.evaluation.evaluator import ANSWER_TOKENS
from prompthone.models.base import Message
from prompthone.prompts.calibration import Calibration
from prompthone.prompts.prompt import INPUT_PREFIX, Prompt, render_user_message
from prompthone.tasks.example import Task

#: the name of the input variable in every template form
VARIABLE = "input"
_SENTINEL = "\x00prompthone-input\x00"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PromptParts:
    """The text prompthone sends for any input (the user turn split at the input), and how the answer is read."""

    system: str | None
    before: str
    after: str
    settings: dict[str, Any]
    notes: tuple[str, ...] = field(default=())

    def user_message(self, text: str) -> str:
        return f"{self.before}{text}{self.after}"

    def messages(self, text: str) -> tuple[Message, ...]:
        """The chat messages for input `text`, exactly as prompthone renders them (`prompts.prompt.render`)."""
        system = (Message("system", self.system),) if self.system else ()
        return (*system, Message("user", self.user_message(text)))


def parts_of(prompt: Prompt, task: Task, *, scoring: str) -> PromptParts:
    """`prompt`'s text split at the input, its answer-reading settings, and the notes for what a client applies."""
    before, after = render_user_message(prompt, _SENTINEL).split(_SENTINEL)
    labels = list(task.labels) if task.labels else None
    settings = {
        "format_version": FORMAT_VERSION, "variable": VARIABLE, "system": prompt.system, "scoring": scoring,
        "labels": labels, "metric": task.metric, "temperature": 0.0, "max_tokens": ANSWER_TOKENS,
        "stop": [f"\n{INPUT_PREFIX}"], "answer_prefix": prompt.answer_prefix or None,
        "reasoning_tokens": prompt.reasoning_tokens, "extractor": prompt.extractor if prompt.reasons else None,
        "calibration": prompt.calibration.to_dict() if prompt.calibration is not None else None}
    return PromptParts(prompt.system, before, after, settings, tuple(_notes(prompt, labels, scoring)))


def _notes(prompt: Prompt, labels: list[str] | None, scoring: str) -> list[str]:
    notes = []
    if scoring == "labels" and labels:
        notes.append(f"prompthone read the answer by label scoring (the label among {', '.join(labels)} the model "
                     f"finds most likely right after the prompt); a client that generates text should parse its "
                     f"reply for one of them, which can differ a little from label scoring")
    if prompt.calibration is not None:
        prior = ", ".join(f"{k} {v:.3f}" for k, v in zip(prompt.calibration.labels, _prior(prompt.calibration),
                                                          strict=True))
        notes.append(f"divide each label's probability by the prior ({prior}; {prompt.calibration.method} "
                     f"calibration) before taking the most likely label: it needs the labels' log-probabilities")
    if prompt.reasons:
        notes.append(f"two calls: the model first reasons (greedy, up to {prompt.reasoning_tokens} tokens, stopping at "
                     f"'\\n{INPUT_PREFIX}'), then the reply goes on with '{prompt.extractor}' and the answer is "
                     f"read there")
    if prompt.answer_prefix:
        notes.append(f"the reply must start with {prompt.answer_prefix!r}: send it as the start of the assistant "
                     f"turn (a prefill), which OpenAI's chat API cannot do")
    return notes


def _prior(calibration: Calibration) -> list[float]:
    import math

    return [math.exp(v) for v in calibration.log_prior]


# -- OpenAI-style chat messages ------------------------------------------------------------------------------------
def placeholder(parts: PromptParts) -> str:
    """`{{input}}`, or with more braces when the prompt's own text holds that string (it must appear once)."""
    mark = "{{" + VARIABLE + "}}"
    while mark in parts.before or mark in parts.after or (parts.system and mark in parts.system):
        mark = "{" + mark + "}"
    return mark


def openai_messages(parts: PromptParts) -> dict[str, Any]:
    """The messages any OpenAI-compatible client sends, the input slot marked by `placeholder`."""
    mark = placeholder(parts)
    return {"messages": [{"role": m.role, "content": m.content} for m in parts.messages(mark)],
            "placeholder": mark, "settings": parts.settings, "notes": list(parts.notes)}


def render_openai(document: dict[str, Any], text: str) -> tuple[Message, ...]:
    """The chat messages of an exported `openai_messages` document for input `text`."""
    mark = document["placeholder"]
    return tuple(Message(m["role"], m["content"].replace(mark, text)) for m in document["messages"])


# -- Jinja2 (and promptfoo's Nunjucks, which reads the same subset) ---------------------------------------------------
def _literal(text: str) -> str:
    """`text` as template source that renders to itself: raw blocks, with any 'endraw' tag spelled out."""
    if not text:
        return ""
    pieces = text.split("{% endraw %}")
    return "{{ '{% endraw %}' }}".join(f"{{% raw %}}{piece}{{% endraw %}}" if piece else "" for piece in pieces)


def jinja_template(parts: PromptParts) -> str:
    """The user turn as a Jinja2 template of one variable, `input`."""
    return f"{_literal(parts.before)}{{{{ {VARIABLE} }}}}{_literal(parts.after)}"


def jinja_settings(parts: PromptParts) -> dict[str, Any]:
    return {"template": "prompt.jinja", "renders": "the user message", "settings": parts.settings,
            "notes": list(parts.notes)}


def render_jinja(template: str, settings: dict[str, Any], text: str) -> tuple[Message, ...]:
    """The chat messages of an exported Jinja2 template and its settings for input `text`."""
    import jinja2

    user = jinja2.Environment(autoescape=False, keep_trailing_newline=True).from_string(template)
    system = settings["settings"].get("system")
    return (*((Message("system", system),) if system else ()), Message("user", user.render({VARIABLE: text})))


def promptfoo_prompt(parts: PromptParts) -> list[dict[str, str]]:
    """promptfoo's chat prompt (a JSON list of messages; Nunjucks templates, literal text in raw blocks)."""
    system = [{"role": "system", "content": _literal(parts.system)}] if parts.system else []
    return [*system, {"role": "user", "content": jinja_template(parts)}]


def render_promptfoo(messages: list[dict[str, str]], text: str) -> tuple[Message, ...]:
    """promptfoo's chat prompt rendered for input `text` (Jinja2 reads the Nunjucks subset it is written in)."""
    import jinja2

    env = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
    return tuple(Message(m["role"], env.from_string(m["content"]).render({VARIABLE: text})) for m in messages)


def promptfoo_config(task: Task, scoring: str, model_spec: str | None) -> dict[str, Any]:
    """promptfoo's configuration: the prompt file, a provider where the run's model is a server, and the task's
    test split as test cases with the metric as an assertion (on generated text: promptfoo reads no label
    scores)."""
    from prompthone.models.openai_wire import mask_credentials
    from prompthone.models.spec import ModelSpec

    provider: dict[str, Any] = {"id": "openai:chat:YOUR-MODEL", "label": "set this to where you serve the model"}
    server = ModelSpec.parse(model_spec).openai if model_spec is not None else None
    if server is not None:  # a run records a spec only without credentials; masked here all the same
        config = {"apiBaseUrl": mask_credentials(server.base_url), "temperature": 0, "max_tokens": ANSWER_TOKENS}
        provider = {"id": f"openai:chat:{server.model or 'YOUR-MODEL'}", "config": config}
    return {"description": f"prompthone's found prompt for {task.name} (answers read by {scoring})",
            "prompts": ["file://prompt.json"], "providers": [provider],
            "tests": [{"vars": {VARIABLE: e.input}, "assert": [_assertion(task, e.target)]} for e in task.test]}


def _assertion(task: Task, target: str) -> dict[str, Any]:
    """The task's metric as a promptfoo assertion on the reply's text."""
    if task.labels:
        return {"type": "javascript", "value": "output.trim().toLowerCase().replace(/^[^a-z0-9]+/, '')"
                                               f".startsWith({json.dumps(target.lower())})"}
    if task.metric == "numeric_match":
        return {"type": "javascript", "value": "(output.match(/-?\\d+(?:\\.\\d+)?/g) || []).slice(-1)[0] == "
                                               f"{json.dumps(target)}"}
    if task.metric == "exact_match":
        return {"type": "equals", "value": target}
    return {"type": "icontains", "value": target}


# -- DSPy -----------------------------------------------------------------------------------------------------------
def dspy_state(prompt: Prompt, task: Task) -> dict[str, Any]:
    """The instruction and demos as the state a DSPy `Predict("input -> answer")` loads (`load_state`), as plain
    data: prompthone does not import DSPy. DSPy renders its own prompt from these parts (its adapter's wording), so
    it is not the prompt prompthone scored: the one form `--verify` cannot vouch for."""
    instruction = "\n\n".join(p for p in (prompt.system or "", prompt.instruction, prompt.output_format) if p.strip())
    return {"traces": [], "train": [], "demos": [{"input": d.input, "answer": d.target} for d in prompt.demos],
            "signature": {"instructions": instruction,
                          "fields": [{"prefix": "Input:", "description": "${input}"},
                                     {"prefix": "Answer:", "description": f"${{answer}}{_label_hint(task)}"}]},
            "lm": None}


def _label_hint(task: Task) -> str:
    return f" (one of: {', '.join(task.labels)})" if task.labels else ""
