"""Reading prompts users hand us: JSON (a Prompt or a run's result.json) or a plain instruction text.

Prompt files follow the task files' rules (`prompthone.tasks.loaders`): UTF-8 only (a leading BOM dropped, a bad
byte named by line and column), and every malformed field is one InputError naming the file and the field. The
text is data: braces and chat markers in any part are kept verbatim (rendering never formats them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError
from prompthone.prompts.calibration import Calibration
from prompthone.prompts.prompt import DEFAULT_EXTRACTOR, POSITIONS, Prompt
from prompthone.tasks.example import Example, Task
from prompthone.tasks.lines import decode_utf8

_TEXT_FIELDS = ("instruction", "output_format", "extractor", "answer_prefix")


def read_prompt_file(path: Path, task: Task) -> Prompt:
    """A Prompt from `path`. Plain text is the instruction; the task supplies the output-format line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", path=str(path)) from None
    text = decode_utf8(data, path=str(path))
    if path.suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=str(path),
                             line=exc.lineno) from None
        if isinstance(document, dict) and "best_prompt" in document:
            document = document["best_prompt"]
        if not isinstance(document, dict) or "instruction" not in document:
            raise InputError("expected a prompt object with an 'instruction' (or a run's result.json)",
                             path=str(path), field="instruction")
        return prompt_from_document(document, path=str(path))
    if not text.strip():
        raise InputError("the prompt file is empty", path=str(path))
    return Prompt(text.strip(), output_format=task.output_format)


def prompt_from_document(data: dict[str, Any], *, path: str) -> Prompt:
    """A Prompt from a parsed prompt object, checking each field's type first (Prompt.from_dict trusts its input)."""
    def fail(field: str, message: str) -> InputError:
        return InputError(message, path=path, field=field)

    for field in _TEXT_FIELDS:
        if field in data and not isinstance(data[field], str):
            raise fail(field, f"expected a string, got {type(data[field]).__name__}")
    if data.get("system") is not None and not isinstance(data["system"], str):
        raise fail("system", f"expected a string or null, got {type(data['system']).__name__}")
    if data.get("instruction_position", "before") not in POSITIONS:
        raise fail("instruction_position", f"expected one of {', '.join(POSITIONS)}, "
                                           f"got {data['instruction_position']!r}")
    tokens = data.get("reasoning_tokens", 0)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise fail("reasoning_tokens", f"expected a whole number ≥ 0, got {tokens!r}")
    demos = data.get("demos", [])
    if not isinstance(demos, list):
        raise fail("demos", f"expected a list of {{input, target}} objects, got {type(demos).__name__}")
    parsed: list[Example] = []
    for number, demo in enumerate(demos, start=1):
        if not isinstance(demo, dict):
            raise fail("demos", f"demo {number}: expected an object, got {type(demo).__name__}")
        for key in ("input", "target"):
            if not isinstance(demo.get(key), str | int | float) or isinstance(demo.get(key), bool):
                raise fail("demos", f"demo {number}: expected a string {key!r}, got {demo.get(key)!r}")
        parsed.append(Example(str(demo["input"]), str(demo["target"])))
    calibration = None
    if data.get("calibration") is not None:
        if not isinstance(data["calibration"], dict):
            raise fail("calibration", f"expected an object, got {type(data['calibration']).__name__}")
        try:
            calibration = Calibration.from_dict(data["calibration"])
        except ConfigError as exc:
            raise fail("calibration", str(exc)) from None
    return Prompt(instruction=data["instruction"], system=data.get("system"), demos=tuple(parsed),
                  output_format=data.get("output_format", ""),
                  instruction_position=data.get("instruction_position", "before"),
                  reasoning_tokens=tokens, extractor=data.get("extractor", DEFAULT_EXTRACTOR),
                  calibration=calibration, answer_prefix=data.get("answer_prefix") or "")
