"""The prompt corpus PAS curates: a user's JSONL file, or a default one made of BIG-bench task inputs.

The default corpus draws up to `per_task` inputs from every BIG-bench JSON task (166 tasks over Q&A, code,
translation, math, reasoning, classification, ... — the same cached sdist the task loader reads), so the pipeline
runs offline on diverse prompts. Multiple-choice inputs get their options appended, and task prefixes are kept, so
each prompt is a self-contained request; the known answer rides along in `meta` for the critic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompthone.augment.pairs import prompt_text, read_jsonl
from prompthone.errors import InputError

MAX_PROMPT_CHARS = 2000
MAX_OPTIONS = 6


@dataclass(frozen=True)
class CorpusPrompt:
    """One prompt of the corpus with where it came from (and, for BIG-bench, its reference answer)."""

    id: str
    prompt: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "source": self.source, "meta": self.meta}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CorpusPrompt:
        return cls(str(record["id"]), str(record["prompt"]), str(record.get("source", "")),
                   dict(record.get("meta") or {}))


def read_corpus(path: Path, field_name: str = "prompt") -> list[CorpusPrompt]:
    """Prompts from a JSONL file: field `field_name` (or `input`/`text`/`instruction`) of each line."""
    prompts = []
    for line, record in read_jsonl(path):
        text = prompt_text(record, path, line, field_name).strip()
        prompts.append(CorpusPrompt(f"{path.stem}:{line}", text, str(path), dict(record.get("meta") or {})))
    if not prompts:
        raise InputError("no prompts found", path=str(path))
    return prompts


def _bigbench_prompt(task: dict[str, Any], example: dict[str, Any]) -> tuple[str, str] | None:
    text = example.get("input")
    if not isinstance(text, str) or not text.strip():
        return None
    prompt = (str(task.get("task_prefix") or "") + text).strip()
    target: Any = example.get("target", "")
    scores = example.get("target_scores")
    if isinstance(scores, dict) and scores:
        if 2 <= len(scores) <= MAX_OPTIONS:
            prompt += "\nOptions: " + "; ".join(str(option) for option in scores)
        target = max(scores, key=lambda option: scores[option] or 0)
    if isinstance(target, list):
        target = target[0] if target else ""
    if len(prompt) > MAX_PROMPT_CHARS:
        return None
    return prompt, str(target)


def _task_examples(root: Path, relative: str) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    try:
        task = json.loads((root / relative).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    examples = task.get("examples")
    if isinstance(examples, list) and examples:
        yield task, examples


def bigbench_corpus(per_task: int = 8, seed: int = 0) -> list[CorpusPrompt]:
    """Up to `per_task` prompts from each BIG-bench JSON task (downloads the sdist once, like `bbh:` tasks)."""
    from prompthone.tasks.bigbench import cache_dir, ensure_cache

    rng = random.Random(seed)
    root = cache_dir() / "tasks"
    prompts: list[CorpusPrompt] = []
    for name, relative in sorted(ensure_cache().items()):
        for task, examples in _task_examples(root, relative):
            keywords = [str(k) for k in task.get("keywords", [])][:6]
            picks = rng.sample(range(len(examples)), min(per_task, len(examples)))
            for index in sorted(picks):
                made = _bigbench_prompt(task, examples[index]) if isinstance(examples[index], dict) else None
                if made is not None:
                    prompts.append(CorpusPrompt(f"bigbench:{name}:{index}", made[0], f"bigbench:{name}",
                                                {"target": made[1], "keywords": keywords}))
    return prompts
