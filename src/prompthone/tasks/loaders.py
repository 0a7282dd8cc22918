"""Load task examples from JSONL, JSON and CSV files, with one clear error per malformed line.

Every error is an `InputError` that names the file, the 1-based line and the field, so a user can open
the file at that spot and fix it. `meta` of each example records the source line and file plus any other
fields of the record (an `id`, for instance).

Hostile input is decided here, once for every format (issue 9):

- Encoding: UTF-8 only, never guessed and never replaced. The first byte that is not UTF-8 stops the load
  with its line, its column (in characters, as an editor counts), its byte offset in the file and, where
  the record still parses, its field; the fix asked for is re-saving the file as UTF-8. A UTF-16 file (its
  byte-order mark) and NUL bytes (UTF-16 without a mark, or a binary file) are named as such.
- A UTF-8 byte-order mark is dropped where a file starts and, in JSONL, where any line starts (files
  joined with `cat`); a BOM inside a value is data and kept.
- Size: one line may hold at most `max_line_bytes` (1 MiB unless `PROMPTHONE_MAX_LINE_BYTES` or
  `max_line_bytes=` say otherwise), and one CSV row (which may span lines) as much. Files are read a line
  at a time and an over-long line is measured in 1 MiB chunks, so memory stays bounded whatever the file
  holds. A limit, not a bigger buffer: an example is rendered into every prompt an optimizer tries, and
  1 MiB is ~250k tokens, past nearly every model's context window (the embedded model's is 4k tokens), so
  such a line is a mistake (a lost newline, a minified dump, an unclosed CSV quote) that would otherwise
  fail much later, slowly, inside a model call.
- Ids: an `id` field is optional; where present it must be unique (the error names both lines). Records
  with the same input and target are kept, each in its own place (the run store keys examples by split and
  position, so copies never overwrite each other), and a warning names the first copy.
- Text is data: braces, quotes, chat-template tokens and 'Input:'/'Answer:' markers are loaded verbatim.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prompthone.errors import InputError
from prompthone.tasks.example import Example
from prompthone.tasks.lines import (
    BOM,
    SURROGATE,
    UTF16_BOMS,
    BadBytes,
    decode_line,
    decode_utf8,
    json_type_name,
    jsonl_records,
    line_limit,
    physical_lines,
    raise_hint,
    read_bytes,
)

logger = logging.getLogger(__name__)

_LINE_BREAK = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # \n, \r\n or a lone \r (old Mac CSV files)
_FIELD_HINT = "use --input-field/--target-field (input_field=/target_field=) to name the right columns"


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
    raise InputError(f"expected a string or a number, got {json_type_name(value)}",
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


def _place(example: Example) -> str:
    line = example.meta.get("line")
    return f"line {line}" if line is not None else f"record {example.meta.get('record')}"


def _check_examples(examples: list[Example], *, path: str) -> None:
    """Ids must be unique (an error naming both places); a repeated input and target is kept, with a warning."""
    by_id: dict[object, Example] = {}
    by_key: dict[str, Example] = {}
    repeats: list[tuple[Example, Example]] = []
    for example in examples:
        value = example.meta.get("id")
        if value is not None and value != "":
            key = (type(value), value) if isinstance(value, str | int | float) else json.dumps(value, default=str)
            first = by_id.setdefault(key, example)
            if first is not example:
                where = "" if example.meta.get("line") is not None else f"{_place(example)}: "
                raise InputError(f"{where}id {value!r} is already used on {_place(first)}; ids must be unique "
                                 "(drop the repeated example or give it its own id)",
                                 path=path, line=example.meta.get("line"), field="id")
        original = by_key.setdefault(example.key, example)
        if original is not example:
            repeats.append((example, original))
    if repeats:
        copy, original = repeats[0]
        at = f":{copy.meta['line']}" if copy.meta.get("line") is not None else f" {_place(copy)}"
        logger.warning("%s%s: same input and target as %s (%d repeated example(s) in the file); each copy is "
                       "kept, scored and stored in its own place", path, at, _place(original), len(repeats))


def load_jsonl(path: str | Path, *, input_field: str = "input", target_field: str = "target",
               labels: Sequence[str] | None = None, max_line_bytes: int | None = None) -> list[Example]:
    """Read one JSON object per line into Examples; blank lines are skipped.

    Raises InputError (file, line, field) for an empty file, invalid JSON, a line that is not an object,
    a missing or non-text field, an empty input or target, a target outside `labels`, a repeated `id`,
    non-UTF-8 or NUL bytes, or a line over the size limit (see the module docstring for these policies).
    """
    name, limit = str(path), line_limit(max_line_bytes)
    examples = [record_to_example(record, path=name, line=number, input_field=input_field,
                                  target_field=target_field, labels=labels)
                for number, record in jsonl_records(name, limit)]
    if not examples:
        raise InputError("the file has no examples (it is empty or only blank lines)", path=name)
    _check_examples(examples, path=name)
    return examples


def load_json(path: str | Path, *, input_field: str = "input", target_field: str = "target",
              labels: Sequence[str] | None = None, max_line_bytes: int | None = None) -> list[Example]:
    """Read a JSON array of objects (or an object with an 'examples' array) into Examples.

    A JSON document has no per-record lines, so errors name the record number (1-based) instead. The document
    is parsed whole; the size limit applies to each example's input and target.
    """
    return examples_from_json(read_json_file(path), path=str(path), input_field=input_field,
                              target_field=target_field, labels=labels, max_line_bytes=max_line_bytes)


def read_json_file(path: str | Path) -> Any:
    """Read and parse a whole JSON file; errors name the file and the line json reports."""
    name, data = read_bytes(path)
    return parse_json_document(data, path=name)


def examples_from_json(document: Any, *, path: str, input_field: str = "input", target_field: str = "target",
                       labels: Sequence[str] | None = None, max_line_bytes: int | None = None) -> list[Example]:
    """Examples from a parsed JSON array of objects or an object with an 'examples' array."""
    records = document.get("examples") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise InputError("expected a JSON array of objects or an object with an 'examples' array", path=path)
    limit = line_limit(max_line_bytes)
    examples = []
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise InputError(f"record {index}: expected an object, got {json_type_name(record)}", path=path)
        try:
            example = record_to_example(record, path=path, line=None, input_field=input_field,
                                        target_field=target_field, labels=labels)
        except InputError as error:
            raise InputError(f"record {index}: {error.reason}", path=path, field=error.field) from None
        for field, text in ((input_field, example.input), (target_field, example.target)):
            if len(text) > limit // 4 and (size := len(text.encode("utf-8", "surrogatepass"))) > limit:
                raise InputError(f"record {index}: the value is {size:,} bytes, too long for one example; "
                                 f"{raise_hint(limit)}", path=path, field=field)
        example.meta.update(record=index)
        examples.append(example)
    if not examples:
        raise InputError("the file has no examples", path=path)
    _check_examples(examples, path=path)
    return examples


def parse_json_document(data: bytes, *, path: str) -> Any:
    """Parse a whole JSON file; errors name the line json reports."""
    text = decode_utf8(data, path=path)
    if not text.strip():
        raise InputError("the file is empty", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"invalid JSON: {error.msg} (column {error.colno})", path=path,
                         line=error.lineno) from None


class _CsvLines:
    """A CSV file's decoded lines for `csv.reader`, one at a time, so that no row can outgrow the size limit.

    Lines end in \\n, \\r\\n or a lone \\r and are counted as an editor counts them. A row's first
    undecodable byte is kept, not raised, so that the caller can name its column once the row is parsed.
    """

    def __init__(self, path: str, limit: int) -> None:
        self.path, self.limit = path, limit
        self.line = 0  # the last line handed to the reader
        self.row_start, self.row_bytes = 1, 0
        self.problem: BadBytes | None = None
        self._physical = physical_lines(path, limit)
        self._pending: list[tuple[int, bytes]] = []
        self._utf16 = False

    def __iter__(self) -> _CsvLines:
        return self

    def start_row(self) -> None:
        self.row_start, self.row_bytes, self.problem = self.line + 1, 0, None

    def __next__(self) -> str:
        if self._pending:
            offset, piece = self._pending.pop()
        else:
            number, offset, piece = next(self._physical)
            if number == 1:
                self._utf16 = piece.startswith(UTF16_BOMS)
                if piece.startswith(BOM):
                    piece, offset = piece[len(BOM):], offset + len(BOM)
            if piece.find(b"\r", 0, len(piece) - 2) >= 0:  # lone \r line ends: one piece per line
                for part in _LINE_BREAK.findall(piece):
                    self._pending.insert(0, (offset, part))
                    offset += len(part)
                offset, piece = self._pending.pop()
        self.line += 1
        self.row_bytes += len(piece)
        if self.row_bytes > self.limit:
            spans = (f" (it runs on from line {self.row_start} to line {self.line}: is a closing quote missing?)"
                     if self.line > self.row_start else "")
            raise InputError(f"the row is too long for one example{spans}; "
                             f"{raise_hint(self.limit)}", path=self.path, line=self.row_start)
        text, problem = decode_line(piece, path=self.path, line=self.line, offset=offset, utf16=self._utf16)
        self.problem = self.problem or problem
        return text


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """Let `csv` read fields up to `limit` (rows are bounded by _CsvLines); the process-wide setting is restored."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, limit + 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _csv_rows(path: str, limit: int) -> Iterator[tuple[int, int, list[str], BadBytes | None]]:
    """(first line, last line, cells, first bad byte) for each CSV row; quoted fields may span lines."""
    lines = _CsvLines(path, limit)
    reader = csv.reader(lines)
    while True:
        lines.start_row()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"malformed CSV: {error}", path=path, line=lines.line) from None
        yield lines.row_start, lines.line, row, lines.problem


def _csv_header(rows: Iterator[tuple[int, int, list[str], BadBytes | None]], *, path: str,
                fields: Sequence[str]) -> list[str]:
    """The header row; it must exist and name the input and target columns."""
    for line, _, header, problem in rows:
        if problem is not None:
            raise problem.error(path)
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


def _ragged_row(cells: list[str], header: list[str], first: int, last: int) -> str:
    """Why a row's cell count is wrong; a short row whose quoted cell spans lines is likely an unclosed quote."""
    message = (f"the row has {len(cells)} cell{'' if len(cells) == 1 else 's'} but the header has "
               f"{len(header)} columns")
    if len(cells) < len(header) and last > first and any("\n" in cell or "\r" in cell for cell in cells):
        message += f"; a quoted cell runs from line {first} to line {last}: is a closing quote missing?"
    return message


def load_csv(path: str | Path, *, input_field: str = "input", target_field: str = "target",
             labels: Sequence[str] | None = None, max_line_bytes: int | None = None) -> list[Example]:
    """Read a CSV file with a header row into Examples (UTF-8, optional BOM, multi-line quoted fields).

    Line numbers in errors and in `meta['line']` are the physical line where the row starts; a row is bounded
    by the same size limit as a line (see the module docstring).
    """
    name, limit = str(path), line_limit(max_line_bytes)
    examples = []
    with _csv_field_limit(limit):
        rows = _csv_rows(name, limit)
        header = _csv_header(rows, path=name, fields=(input_field, target_field))
        for line, last, cells, problem in rows:
            if problem is not None:
                bad = [i for i, cell in enumerate(cells) if SURROGATE.search(cell) and i < len(header)]
                raise problem.error(name, field=header[bad[0]] if bad else None)
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise InputError(_ragged_row(cells, header, line, last), path=name, line=line)
            examples.append(record_to_example(dict(zip(header, cells, strict=True)), path=name, line=line,
                                              input_field=input_field, target_field=target_field, labels=labels))
    if not examples:
        raise InputError("the file has a header row but no examples", path=name)
    _check_examples(examples, path=name)
    return examples
