"""The hand grid of the eccentric-prompts study: system message = opener × task line × closer, with and without CoT.

Battle & Gollapudi (2024, arXiv 2402.10949, §3) score every combination of a persona opener, a task line and a
positive-thinking closer (each with a "none" level) as the system message, each with and without chain-of-thought.
A grid is three lists of parts; the empty string is a part's "none" level. Our default lists are package data
(`default_grid.yaml`); a user grid is a YAML file with the same keys.
"""

from __future__ import annotations

import importlib.resources
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompthone.errors import InputError
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Task

PARTS = ("openers", "task_lines", "closers")
NONE_LABEL = "(none)"


@dataclass(frozen=True)
class GridSpec:
    """Three lists of system-message parts; `""` is the "none" level. `source` says where the lists came from."""

    openers: tuple[str, ...]
    task_lines: tuple[str, ...]
    closers: tuple[str, ...]
    source: str = "built-in"

    @property
    def size(self) -> int:
        """System messages in the grid (before the CoT doubling)."""
        return len(self.openers) * len(self.task_lines) * len(self.closers)

    def to_dict(self) -> dict[str, Any]:
        return {"openers": list(self.openers), "task_lines": list(self.task_lines), "closers": list(self.closers),
                "source": self.source}


@dataclass(frozen=True)
class HandVariant:
    """One hand-written prompt of the study: its three system-message parts and whether it reasons first."""

    index: int
    opener: str
    task_line: str
    closer: str
    cot: bool

    @property
    def system(self) -> str | None:
        """The parts that are not "none", stripped and joined by one space; None when every part is "none"."""
        text = " ".join(p.strip() for p in (self.opener, self.task_line, self.closer) if p.strip())
        return text or None

    def prompt(self, task: Task, cot_tokens: int) -> Prompt:
        """The task's own instruction and output format under this system message (CoT: reason up to `cot_tokens`)."""
        return Prompt(instruction=task.instruction, system=self.system, output_format=task.output_format,
                      reasoning_tokens=cot_tokens if self.cot else 0)

    def label(self, width: int = 40) -> str:
        """A short one-line description for tables: the three parts (or "(none)") and the answering mode."""
        parts = [short(p, width) for p in (self.opener, self.task_line, self.closer)]
        return " | ".join(parts) + (" | CoT" if self.cot else " | direct")


def short(part: str, width: int = 40) -> str:
    """A part as shown in tables and plots: "(none)" for the none level, cut to `width` characters."""
    part = part.strip()
    if not part:
        return NONE_LABEL
    return part if len(part) <= width else part[: width - 1].rstrip() + "…"


def expand_grid(spec: GridSpec, *, cot_tokens: int) -> list[HandVariant]:
    """Every combination, first without CoT, then (when `cot_tokens > 0`) the same ones with CoT.

    Order inside each half: openers outermost, then task lines, then closers, as the lists are written.
    """
    if cot_tokens < 0:
        raise InputError(f"must be ≥ 0, got {cot_tokens}", field="cot_tokens")
    modes = (False, True) if cot_tokens > 0 else (False,)
    combos = list(itertools.product(spec.openers, spec.task_lines, spec.closers))
    return [HandVariant(i, opener, task_line, closer, cot)
            for i, (cot, (opener, task_line, closer)) in enumerate(itertools.product(modes, combos))]


@dataclass(frozen=True)
class StudyPreset:
    """A published study design: its grid (package data), the task it was made for, the optimizers it runs by
    default and its chain-of-thought length. Only the grid is forced; `--method` and `--cot-tokens` override."""

    name: str
    grid_file: str
    task: str
    methods: tuple[str, ...]
    cot_tokens: int
    about: str


#: `study --grid NAME` presets
PRESETS: dict[str, StudyPreset] = {
    "battle-gollapudi": StudyPreset(
        "battle-gollapudi", "battle_gollapudi_grid.yaml", "gen:arithmetic",
        ("gepa:evolve_answer_prefix=true",), 128,
        "Battle & Gollapudi (2024): a math grid of openers x task lines x closers, +/- CoT, on grade-school word "
        "problems with numeric exact match (their GSM8K; here gen:arithmetic), against an optimizer of the system "
        "message and an answer prefix (their DSPy; here GEPA with evolve_answer_prefix)"),
}


def _packaged_grid(file: str, source: str) -> GridSpec:
    resource = importlib.resources.files("prompthone.grid_study").joinpath(file)
    return grid_from_text(resource.read_text(encoding="utf-8"), source=source)


def default_grid() -> GridSpec:
    """Our default lists (5 openers × 3 task lines × 4 closers), read from the package's `default_grid.yaml`."""
    return _packaged_grid("default_grid.yaml", "built-in")


def preset_grid(name: str) -> GridSpec:
    """The grid of preset `name` (`PRESETS`); its source reads `preset NAME`."""
    return _packaged_grid(PRESETS[name].grid_file, f"preset {name}")


def preset_of(grid: GridSpec) -> StudyPreset | None:
    """The preset a grid came from (`preset_grid`), whether the caller passed its name or the grid itself: the CLI
    resolves `--grid NAME` before it loads the model, and the preset's methods and CoT length must still apply."""
    name = grid.source.removeprefix("preset ")
    return PRESETS.get(name) if grid.source.startswith("preset ") else None


def load_grid(path: str | Path) -> GridSpec:
    """A user grid from a YAML file with keys `openers`, `task_lines`, `closers` (lists of strings or null).

    A missing key means that part is left out (only its "none" level). Every problem is an `InputError` naming
    the file and the field (`openers[2]`) or, for broken YAML, the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"grid file not found (or a preset: {', '.join(PRESETS)})", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the grid file: {exc}", path=str(path)) from None
    return grid_from_text(text, source=str(path))


def grid_from_text(text: str, *, source: str) -> GridSpec:
    """Parse and check a grid written as YAML (`source` names it in errors)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"not valid YAML: {problem}", path=source,
                         line=mark.line + 1 if mark is not None else None) from None
    return grid_from_mapping(data, source=source)


def grid_from_mapping(data: Any, *, source: str = "<grid>") -> GridSpec:
    """Check a parsed grid: a mapping of the three part lists; entries are strings, null or "" (none)."""
    if not isinstance(data, Mapping) or not data:
        raise InputError(f"expected a mapping with keys {', '.join(PARTS)} (lists of strings; null = none)",
                         path=source)
    for key in data:
        if key not in PARTS:
            raise InputError(f"unknown key; expected {', '.join(PARTS)}", path=source, field=str(key))
    lists = {key: _parts(data[key], key, source) if key in data else ("",) for key in PARTS}
    return GridSpec(lists["openers"], lists["task_lines"], lists["closers"], source=source)


def _parts(value: Any, key: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InputError(f"expected a list of strings (null = none), got {type(value).__name__}",
                         path=source, field=key)
    parts: list[str] = []
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, str):
            raise InputError(f"expected a string or null, got {item!r}", path=source, field=f"{key}[{i}]")
        part = " ".join((item or "").split())  # one line, single spaces: no stray whitespace in the system message
        if part in parts:
            raise InputError(f"duplicate entry {short(part)!r}", path=source, field=f"{key}[{i}]")
        parts.append(part)
    if not parts:
        raise InputError("needs at least one entry (null for none)", path=source, field=key)
    return tuple(parts)
