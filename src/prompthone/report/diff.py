"""The best prompt against the seed: a word-level diff of the instruction and system message, demos added or
removed, and the settings that changed (answer format, instruction position, reasoning, label calibration, answer
prefix)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from prompthone.prompts.calibration import Calibration

#: prompt settings shown only when they differ
SETTINGS = (("output_format", "output format"), ("instruction_position", "instruction position"),
            ("reasoning_tokens", "reasoning tokens"), ("extractor", "answer extractor"),
            ("calibration", "label calibration"), ("answer_prefix", "answer prefix"))
_WORD = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True)
class Segment:
    """A run of text that is in both prompts ('equal'), only in the best ('insert') or only in the seed ('delete')."""

    op: str
    text: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    segments: tuple[Segment, ...]

    @property
    def changed(self) -> bool:
        return any(s.op != "equal" for s in self.segments)


@dataclass(frozen=True)
class DemoChange:
    status: str  # "kept" | "added" | "removed"
    input: str
    target: str


@dataclass(frozen=True)
class PromptDiff:
    fields: tuple[FieldDiff, ...]
    demos: tuple[DemoChange, ...]
    settings: tuple[tuple[str, Any, Any], ...]

    @property
    def changed(self) -> bool:
        return any(f.changed for f in self.fields) or any(d.status != "kept" for d in self.demos) or bool(self.settings)


def word_diff(old: str, new: str) -> tuple[Segment, ...]:
    """Segments turning `old` into `new`, compared word by word (whitespace travels with its word)."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    matcher = SequenceMatcher(None, [w.strip() for w in a], [w.strip() for w in b], autojunk=False)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _push(segments, "equal", "".join(b[j1:j2]))
            continue
        _push(segments, "delete", "".join(a[i1:i2]))
        _push(segments, "insert", "".join(b[j1:j2]))
    return tuple(segments)


def _push(segments: list[Segment], op: str, text: str) -> None:
    if not text:
        return
    if segments and segments[-1].op == op:
        segments[-1] = Segment(op, segments[-1].text + text)
    else:
        segments.append(Segment(op, text))


def prompt_diff(seed: dict[str, Any], best: dict[str, Any]) -> PromptDiff:
    """Compare two prompts in `Prompt.to_dict()` form."""
    fields = tuple(FieldDiff(label, word_diff(str(seed.get(name) or ""), str(best.get(name) or "")))
                   for name, label in (("instruction", "instruction"), ("system", "system message")))
    settings = tuple((label, _shown(name, seed.get(name)), _shown(name, best.get(name))) for name, label in SETTINGS
                     if seed.get(name) != best.get(name))
    return PromptDiff(fields, demo_changes(seed.get("demos") or [], best.get("demos") or []), settings)


def _shown(name: str, value: Any) -> Any:
    """A setting as a reader wants it: a calibration in words (method, inputs, prior per label)."""
    if name == "calibration":
        return Calibration.from_dict(value).describe() if isinstance(value, dict) else "none"
    if name == "answer_prefix":
        return value or "none"
    return value


def demo_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[DemoChange, ...]:
    """The demos of both prompts in order, each kept, added (best only) or removed (seed only)."""
    a = [(str(d.get("input", "")), str(d.get("target", ""))) for d in old]
    b = [(str(d.get("input", "")), str(d.get("target", ""))) for d in new]
    changes: list[DemoChange] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            changes += [DemoChange("kept", *d) for d in b[j1:j2]]
            continue
        changes += [DemoChange("removed", *d) for d in a[i1:i2]]
        changes += [DemoChange("added", *d) for d in b[j1:j2]]
    return tuple(changes)
