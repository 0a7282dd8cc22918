"""The hand grid: expansion, system messages, CoT doubling, and the grid YAML with its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import prompthone as ph
from prompthone.errors import InputError
from prompthone.grid_study.grid import PRESETS, GridSpec, default_grid, expand_grid, load_grid, preset_grid
from prompthone.grid_study.runner import resolve_grid
from prompthone.optimizers.gepa import GEPA
from prompthone.tasks.registry import load_task

TASK = ph.Task("t", (), (), (), labels=("yes", "no"), instruction="Decide.", output_format="Answer yes or no.")


def test_default_grid_is_5_by_3_by_4_and_doubles_with_cot() -> None:
    grid = default_grid()
    assert (len(grid.openers), len(grid.task_lines), len(grid.closers)) == (5, 3, 4)
    assert all(part == "" for part in (grid.openers[0], grid.task_lines[0], grid.closers[0]))
    variants = expand_grid(grid, cot_tokens=64)
    assert len(variants) == 120 and grid.size == 60
    assert [v.index for v in variants] == list(range(120))
    direct, cot = variants[:60], variants[60:]
    assert not any(v.cot for v in direct) and all(v.cot for v in cot)
    assert [(v.opener, v.task_line, v.closer) for v in direct] == [(v.opener, v.task_line, v.closer) for v in cot]
    assert len({(v.opener, v.task_line, v.closer, v.cot) for v in variants}) == 120
    assert len(expand_grid(grid, cot_tokens=0)) == 60


def test_system_message_joins_present_parts_without_stray_whitespace() -> None:
    grid = GridSpec(("", "You are smart."), ("", "Answer the question."), ("", "This will be fun!"))
    systems = {(v.opener, v.task_line, v.closer): v.system for v in expand_grid(grid, cot_tokens=0)}
    assert systems[("", "", "")] is None
    assert systems[("You are smart.", "", "")] == "You are smart."
    assert systems[("", "", "This will be fun!")] == "This will be fun!"
    assert systems[("You are smart.", "", "This will be fun!")] == "You are smart. This will be fun!"
    assert systems[("You are smart.", "Answer the question.", "This will be fun!")] == (
        "You are smart. Answer the question. This will be fun!")
    for text in systems.values():
        assert text is None or (text == text.strip() and "  " not in text)


def test_variant_prompt_keeps_the_task_instruction_and_sets_cot() -> None:
    grid = GridSpec(("You are smart.",), ("",), ("",))
    direct, cot = expand_grid(grid, cot_tokens=16)
    p, q = direct.prompt(TASK, 16), cot.prompt(TASK, 16)
    assert (p.instruction, p.output_format, p.system, p.reasoning_tokens) == (
        "Decide.", "Answer yes or no.", "You are smart.", 0)
    assert q.reasoning_tokens == 16 and q.reasons and q.system == p.system
    none = expand_grid(GridSpec(("",), ("",), ("",)), cot_tokens=0)[0].prompt(TASK, 0)
    assert none == ph.Prompt("Decide.", output_format="Answer yes or no.")  # the optimizers' seed prompt


def test_negative_cot_tokens_is_an_input_error() -> None:
    with pytest.raises(InputError, match="cot_tokens"):
        expand_grid(default_grid(), cot_tokens=-1)


def test_yaml_grid_loads_and_normalizes(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("openers:\n  - null\n  - '  You are   smart.  '\nclosers: ['', Go!]\n", encoding="utf-8")
    grid = load_grid(path)
    assert grid.openers == ("", "You are smart.")
    assert grid.task_lines == ("",)  # a missing key leaves that part out
    assert grid.closers == ("", "Go!")
    assert grid.source == str(path)
    assert [v.system for v in expand_grid(grid, cot_tokens=0)] == [None, "Go!", "You are smart.",
                                                                    "You are smart. Go!"]


@pytest.mark.parametrize(("text", "field", "reason"), [
    ("openers: [a]\npersonas: [b]\n", "personas", "unknown key"),
    ("openers: You are smart.\n", "openers", "list of strings"),
    ("closers: {a: 1}\n", "closers", "list of strings"),
    ("openers: [a, 3]\n", "openers[1]", "string or null"),
    ("task_lines: [a, [b]]\n", "task_lines[1]", "string or null"),
    ("closers: [Go!, ' Go! ']\n", "closers[1]", "duplicate"),
    ("openers: [null, '']\n", "openers[1]", "duplicate"),
    ("openers: []\n", "openers", "at least one"),
])
def test_yaml_grid_errors_name_file_and_field(tmp_path: Path, text: str, field: str, reason: str) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_grid(path)
    assert info.value.path == str(path) and info.value.field == field
    assert reason in str(info.value) and str(path) in str(info.value) and f"field '{field}'" in str(info.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "", "just text\n"])
def test_yaml_grid_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="expected a mapping") as info:
        load_grid(path)
    assert info.value.path == str(path)


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("openers:\n  - a\n  - [b\nclosers: [c]\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML") as info:
        load_grid(path)
    assert info.value.path == str(path) and info.value.line is not None
    assert str(info.value).startswith(f"{path}:{info.value.line}: ")


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as info:
        load_grid(tmp_path / "nope.yaml")
    assert info.value.path == str(tmp_path / "nope.yaml")



def test_the_battle_gollapudi_preset_is_the_papers_math_grid_with_its_task_and_optimizer() -> None:
    grid = resolve_grid("battle-gollapudi")
    assert grid == preset_grid("battle-gollapudi") and grid.source == "preset battle-gollapudi"
    assert (len(grid.openers), len(grid.task_lines), len(grid.closers)) == (5, 3, 4)  # the paper's 5 x 3 x 4
    assert all(part == "" for part in (grid.openers[0], grid.task_lines[0], grid.closers[0]))
    quoted = {"You are an expert mathematician.", "Solve the following math question.", "This will be fun!",
              "I really need your help!"}
    assert quoted <= {*grid.openers, *grid.task_lines, *grid.closers}
    preset = PRESETS["battle-gollapudi"]
    task = load_task(preset.task)
    assert task.metric == "numeric_match" and task.labels is None  # word problems, numeric exact match
    (spec,) = preset.methods
    name, _, knob = spec.partition(":")
    assert name == "gepa" and GEPA.from_options(dict([knob.split("=")])).evolve_answer_prefix


def test_an_unknown_grid_name_is_a_missing_file_that_names_the_presets(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="battle-gollapudi"):
        resolve_grid(str(tmp_path / "battle-gollapud"))
