"""Load task examples from JSONL, JSON and CSV files, with one clear error per malformed line.

Every error is an `InputError` that names the file, the 1-based line and the field, so a user can open
the file at that spot and fix it. `meta` of each example records the source line and file plus any other
fields of the record (an `id`, for instance).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prompthone.errors import InputError
from prompthone.tasks.example import Example

_FIELD_HINT = "use --input-field/--target-field (input_field=/target_field=) to name the right columns"
_JSON_TYPE_NAMES = {dict: "an object", list: "an array", type(None): "null"}


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _field_text(record: Mapping[str, Any], name: str, *, path: str, line: int | None) -> str:
    """The field's value as text: strings as they are, numbers and booleans converted; anything else fails."""
    if name not in record:
        present = ", ".join(repr(key) for key in record) or "none"
        raise InputError(f"missing field; the fields present are: {present}; {_FIELD_HINT}",
                         path=path, line=line, field=name)
    value = record[name]
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise InputError(f"expected a string or a number, got {_type_name(value)}",
                     path=path, line=line, field=name)


def _canonical_label(target: str, labels: Sequence[str], *, path: str, line: int | None, field: str) -> str:
    """The label `target` names (case-insensitive), spelled as in `labels`; a target outside the set fails."""
    wanted = target.strip().casefold()
    for label in labels:
        if label.strip().casefold() == wanted:
            return label
    raise InputError(f"target {target!r} is not one of the labels: {', '.join(labels)}",
                     path=path, line=line, field=field)


def record_to_example(record: Mapping[str, Any], *, path: str, line: int | None,
                      input_field: str = "input", target_field: str = "target",
                      labels: Sequence[str] | None = None) -> Example:
    """Turn one parsed record into an Example, validating its input, target and label."""
    text = _field_text(record, input_field, path=path, line=line)
    if not text.strip():
        raise InputError("the input is empty", path=path, line=line, field=input_field)
    target = _field_text(record, target_field, path=path, line=line)
    if not target.strip():
        raise InputError("the target is empty", path=path, line=line, field=target_field)
    if labels:
        target = _canonical_label(target, labels, path=path, line=line, field=target_field)
    meta: dict[str, Any] = {key: value for key, value in record.items()
                            if key not in (input_field, target_field)}
    meta.update(line=line, source=path)
    return Example(input=text, target=target, meta=meta)


def _read_bytes(path: str | Path) -> tuple[str, bytes]:
    """The file's display name and bytes; a missing or unreadable file raises InputError."""
    name = str(path)
    try:
        return name, Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=name) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a task file", path=name) from None
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror}", path=name) from None


def _decode(data: bytes, *, path: str) -> str:
    """Decode UTF-8 (a leading BOM is dropped); bad bytes raise InputError naming their line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = 1 + data.count(b"\n", 0, error.start)
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise InputError(f"not valid UTF-8 (byte 0x{data[error.start]:02x} at column {column}); "
                         "re-save the file as UTF-8", path=path, line=line) from None


def _jsonl_records(data: bytes, *, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; bad bytes, bad JSON and non-objects fail."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = _decode_line(raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw, path, number)
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"invalid JSON: {error.msg} (column {error.colno})",
                             path=path, line=number) from None
        if not isinstance(record, dict):
            raise InputError(f"expected a JSON object per line, got {_type_name(record)}",
                             path=path, line=number)
        yield number, record


def _decode_line(raw: bytes, path: str, number: int) -> str:
    """Decode one JSONL line (no BOM handling after line 1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
                         "re-save the file as UTF-8", path=path, line=number) from None


def load_jsonl(path: str | Path, *, input_field: str = "input", target_field: str = "target",
               labels: Sequence[str] | None = None) -> list[Example]:
    """Read one JSON object per line into Examples; blank lines are skipped.

    Raises InputError (file, line, field) for an empty file, invalid JSON, a line that is not an object,
    a missing or non-text field, an empty input or target, a target outside `labels`, or non-UTF-8 bytes.
    """
    name, data = _read_bytes(path)
    examples = [record_to_example(record, path=name, line=number, input_field=input_field,
                                  target_field=target_field, labels=labels)
                for number, record in _jsonl_records(data, path=name)]
    if not examples:
        raise InputError("the file has no examples (it is empty or only blank lines)", path=name)
    return examples


def load_json(path: str | Path, *, input_field: str = "input", target_field: str = "target",
              labels: Sequence[str] | None = None) -> list[Example]:
    """Read a JSON array of objects (or an object with an 'examples' array) into Examples.

    A JSON document has no per-record lines, so errors name the record number (1-based) instead.
    """
    name = str(path)
    return examples_from_json(read_json_file(path), path=name, input_field=input_field,
                              target_field=target_field, labels=labels)


def read_json_file(path: str | Path) -> Any:
    """Read and parse a whole JSON file; errors name the file and the line json reports."""
    name, data = _read_bytes(path)
    return parse_json_document(data, path=name)


def examples_from_json(document: Any, *, path: str, input_field: str = "input", target_field: str = "target",
                       labels: Sequence[str] | None = None) -> list[Example]:
    """Examples from a parsed JSON array of objects or an object with an 'examples' array."""
    records = document.get("examples") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise InputError("expected a JSON array of objects or an object with an 'examples' array", path=path)
    examples = []
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise InputError(f"record {index}: expected an object, got {_type_name(record)}", path=path)
        try:
            example = record_to_example(record, path=path, line=None, input_field=input_field,
                                        target_field=target_field, labels=labels)
        except InputError as error:
            raise InputError(f"record {index}: {error.reason}", path=path, field=error.field) from None
        example.meta.update(record=index)
        examples.append(example)
    if not examples:
        raise InputError("the file has no examples", path=path)
    return examples


def parse_json_document(data: bytes, *, path: str) -> Any:
    """Parse a whole JSON file; errors name the line json reports."""
    text = _decode(data, path=path)
    if not text.strip():
        raise InputError("the file is empty", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"invalid JSON: {error.msg} (column {error.colno})", path=path,
                         line=error.lineno) from None


def _csv_rows(text: str, *, path: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) for each CSV row; quoted fields may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"malformed CSV: {error}", path=path, line=reader.line_num) from None
        yield start, row
        start = reader.line_num + 1


def _csv_header(rows: Iterator[tuple[int, list[str]]], *, path: str, fields: Sequence[str]) -> list[str]:
    """The header row; it must exist and name the input and target columns."""
    for line, header in rows:
        if any(cell.strip() for cell in header):
            names = [cell.strip() for cell in header]
            for field in fields:
                if field not in names:
                    present = ", ".join(repr(n) for n in names)
                    raise InputError(f"missing column in the header row; the columns are: {present}; "
                                     f"{_FIELD_HINT} (a header row is required)",
                                     path=path, line=line, field=field)
            return names
    raise InputError("the file is empty; a header row naming the columns is required", path=path)


def load_csv(path: str | Path, *, input_field: str = "input", target_field: str = "target",
             labels: Sequence[str] | None = None) -> list[Example]:
    """Read a CSV file with a header row into Examples (UTF-8, optional BOM, multi-line quoted fields).

    Line numbers in errors and in `meta['line']` are the physical line where the row starts.
    """
    name, data = _read_bytes(path)
    rows = _csv_rows(_decode(data, path=name), path=name)
    header = _csv_header(rows, path=name, fields=(input_field, target_field))
    examples = []
    for line, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise InputError(f"the row has {len(cells)} cells but the header has {len(header)} columns",
                             path=name, line=line)
        examples.append(record_to_example(dict(zip(header, cells, strict=True)), path=name, line=line,
                                          input_field=input_field, target_field=target_field, labels=labels))
    if not examples:
        raise InputError("the file has a header row but no examples", path=name)
    return examples
