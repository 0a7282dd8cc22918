"""JSONL/JSON/CSV loaders: good files load with meta; every malformed input names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompthone.errors import InputError
from prompthone.tasks.loaders import load_csv, load_json, load_jsonl


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def assert_names(error: InputError, path: Path, line: int | None, field: str | None) -> None:
    """The error carries and prints the file, the line and the field."""
    assert error.path == str(path)
    assert error.line == line
    assert error.field == field
    text = str(error)
    assert str(path) in text
    if line is not None:
        assert f"{path}:{line}:" in text
    if field is not None:
        assert f"field '{field}'" in text


# ---------------------------------------------------------------- JSONL: good input


def test_jsonl_loads_examples_with_meta(tmp_path: Path) -> None:
    content = '{"id": 7, "input": "hi", "target": "yes"}\n\n{"input": "yo", "target": "no"}\n'
    path = write(tmp_path, "t.jsonl", content)
    examples = load_jsonl(path)
    assert [(e.input, e.target) for e in examples] == [("hi", "yes"), ("yo", "no")]
    assert examples[0].meta == {"id": 7, "line": 1, "source": str(path)}
    assert examples[1].meta == {"line": 3, "source": str(path)}


def test_jsonl_converts_numbers_and_bools_and_custom_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"q": 12, "a": true}\n{"q": 1.5, "a": 3}\n')
    examples = load_jsonl(path, input_field="q", target_field="a")
    assert [(e.input, e.target) for e in examples] == [("12", "True"), ("1.5", "3")]


def test_jsonl_bom_and_crlf(tmp_path: Path) -> None:
    content = b'\xef\xbb\xbf{"input": "a", "target": "b"}\r\n{"input": "c", "target": "d"}\r\n'
    path = write(tmp_path, "t.jsonl", content)
    assert [e.target for e in load_jsonl(path)] == ["b", "d"]


def test_jsonl_labels_canonicalize_case(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "a", "target": "Positive"}\n')
    assert load_jsonl(path, labels=["positive", "negative"])[0].target == "positive"


# ---------------------------------------------------------------- JSONL: malformed input


def test_jsonl_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", "\n  \n")
    with pytest.raises(InputError, match="no examples") as info:
        load_jsonl(path)
    assert_names(info.value, path, None, None)


def test_jsonl_bad_json_says_what_json_said(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "a", "target": "b"}\n{"input": "a", "target": }\n')
    with pytest.raises(InputError, match=r"invalid JSON: Expecting value \(column 26\)") as info:
        load_jsonl(path)
    assert_names(info.value, path, 2, None)


def test_jsonl_line_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "a", "target": "b"}\n["a", "b"]\n')
    with pytest.raises(InputError, match="expected a JSON object per line, got an array") as info:
        load_jsonl(path)
    assert_names(info.value, path, 2, None)


def test_jsonl_missing_field_lists_present_fields_and_hints(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "a", "target": "b"}\n\n{"text": "a", "label": "b"}\n')
    with pytest.raises(InputError) as info:
        load_jsonl(path)
    assert_names(info.value, path, 3, "input")
    assert "'text', 'label'" in str(info.value)
    assert "--input-field/--target-field" in str(info.value)


@pytest.mark.parametrize(("value", "kind"),
                         [("null", "null"), ("[1]", "an array"), ('{"x": 1}', "an object")])
def test_jsonl_non_text_field(tmp_path: Path, value: str, kind: str) -> None:
    path = write(tmp_path, "t.jsonl", f'{{"input": "a", "target": {value}}}\n')
    with pytest.raises(InputError, match=f"expected a string or a number, got {kind}") as info:
        load_jsonl(path)
    assert_names(info.value, path, 1, "target")


def test_jsonl_target_outside_labels(tmp_path: Path) -> None:
    content = '{"input": "a", "target": "positive"}\n{"input": "b", "target": "meh"}\n'
    path = write(tmp_path, "t.jsonl", content)
    with pytest.raises(InputError, match="target 'meh' is not one of the labels: positive, negative") as info:
        load_jsonl(path, labels=["positive", "negative"])
    assert_names(info.value, path, 2, "target")


def test_jsonl_non_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", b'{"input": "a", "target": "b"}\n{"input": "caf\xe9", "target": "b"}\n')
    with pytest.raises(InputError, match=r"not valid UTF-8 \(byte 0xe9 at column 15\)") as info:
        load_jsonl(path)
    assert_names(info.value, path, 2, None)


def test_jsonl_empty_input(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "   ", "target": "b"}\n')
    with pytest.raises(InputError, match="the input is empty") as info:
        load_jsonl(path)
    assert_names(info.value, path, 1, "input")


def test_jsonl_empty_target(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"input": "a", "target": ""}\n')
    with pytest.raises(InputError, match="the target is empty") as info:
        load_jsonl(path)
    assert_names(info.value, path, 1, "target")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match="file not found") as info:
        load_jsonl(path)
    assert_names(info.value, path, None, None)


# ---------------------------------------------------------------- CSV


def test_csv_multiline_quoted_field_bom_and_line_numbers(tmp_path: Path) -> None:
    content = '\ufeffid,input,target\n1,"first line\nsecond line",yes\n\n2,"say ""hi""",no\n'
    path = write(tmp_path, "t.csv", content)
    examples = load_csv(path)
    assert [(e.input, e.target) for e in examples] == [("first line\nsecond line", "yes"), ('say "hi"', "no")]
    assert examples[0].meta == {"id": "1", "line": 2, "source": str(path)}
    assert examples[1].meta["line"] == 5


def test_csv_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "")
    with pytest.raises(InputError, match="header row") as info:
        load_csv(path)
    assert_names(info.value, path, None, None)


def test_csv_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "input,target\n")
    with pytest.raises(InputError, match="no examples") as info:
        load_csv(path)
    assert_names(info.value, path, None, None)


def test_csv_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "text,target\nhello,yes\n")
    with pytest.raises(InputError, match="the columns are: 'text', 'target'") as info:
        load_csv(path)
    assert_names(info.value, path, 1, "input")
    assert "--input-field" in str(info.value)


def test_csv_custom_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "text,label\nhello,yes\n")
    assert load_csv(path, input_field="text", target_field="label")[0].target == "yes"


def test_csv_ragged_row(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", 'input,target\n"a\nb",yes\nc,yes,extra\n')
    with pytest.raises(InputError, match="the row has 3 cells but the header has 2 columns") as info:
        load_csv(path)
    assert_names(info.value, path, 4, None)


def test_csv_label_and_empty_input(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "input,target\na,yes\nb,maybe\n")
    with pytest.raises(InputError, match="'maybe' is not one of the labels: yes, no") as info:
        load_csv(path, labels=("yes", "no"))
    assert_names(info.value, path, 3, "target")
    path = write(tmp_path, "u.csv", "input,target\n,yes\n")
    with pytest.raises(InputError, match="the input is empty") as info:
        load_csv(path)
    assert_names(info.value, path, 2, "input")


def test_csv_non_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"input,target\na,yes\n\xff\xfeb,no\n")
    with pytest.raises(InputError, match="not valid UTF-8") as info:
        load_csv(path)
    assert_names(info.value, path, 3, None)


# ---------------------------------------------------------------- JSON documents


def test_json_array_and_examples_object(tmp_path: Path) -> None:
    records = [{"input": "a", "target": "b", "id": 1}]
    first = write(tmp_path, "a.json", json.dumps(records))
    second = write(tmp_path, "b.json", json.dumps({"examples": records}))
    assert load_json(first)[0].meta == {"id": 1, "line": None, "source": str(first), "record": 1}
    assert load_json(second)[0].target == "b"


def test_json_errors_name_record_or_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", json.dumps([{"input": "a", "target": "b"}, {"input": "a"}]))
    with pytest.raises(InputError, match="record 2: missing field") as info:
        load_json(path)
    assert_names(info.value, path, None, "target")
    path = write(tmp_path, "b.json", '[\n{"input": "a",\n "target": }\n]')
    with pytest.raises(InputError, match="invalid JSON") as info:
        load_json(path)
    assert_names(info.value, path, 3, None)
