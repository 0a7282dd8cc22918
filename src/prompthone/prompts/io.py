"""Reading prompts users hand us: JSON (a Prompt or a run's result.json) or a plain instruction text."""

from __future__ import annotations

import json
from pathlib import Path

from prompthone.errors import InputError
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Task


def read_prompt_file(path: Path, task: Task) -> Prompt:
    """A Prompt from `path`. Plain text is the instruction; the task supplies the output-format line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)) from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
        if isinstance(data, dict) and "best_prompt" in data:
            data = data["best_prompt"]
        if not isinstance(data, dict) or "instruction" not in data:
            raise InputError("expected a prompt object with an 'instruction' (or a run's result.json)",
                             path=str(path), field="instruction")
        return Prompt.from_dict(data)
    if not text.strip():
        raise InputError("the prompt file is empty", path=str(path))
    return Prompt(text.strip(), output_format=task.output_format)
