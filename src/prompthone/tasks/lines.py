"""Reading a task file's bytes safely: UTF-8 only with the exact place of a bad byte, lines read in bounded
memory, and the per-line size limit (policies in `prompthone.tasks.loaders`' docstring).

Kept apart from the loaders so that each format (JSONL, CSV, JSON, prompt files) shares one reading path.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from prompthone.errors import ConfigError, InputError

DEFAULT_MAX_LINE_BYTES = 1 << 20
MAX_LINE_BYTES_ENV = "PROMPTHONE_MAX_LINE_BYTES"
BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CHUNK = 1 << 20
_SAVE_AS_UTF8 = "re-save the file as UTF-8 (e.g. iconv -f cp1252 -t utf-8); prompthone never guesses encodings"


def line_limit(value: int | None = None) -> int:
    """The per-line limit: `value`, else $PROMPTHONE_MAX_LINE_BYTES, else 1 MiB (why: `prompthone.tasks.loaders`)."""
    if value is None:
        raw = os.environ.get(MAX_LINE_BYTES_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_LINE_BYTES
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{MAX_LINE_BYTES_ENV}={raw!r} is not a whole number of bytes") from None
    if value < 1:
        raise ConfigError(f"the line size limit must be at least 1 byte, got {value}")
    return value


def raise_hint(limit: int) -> str:
    return (f"the limit is {limit:,} bytes: if the line is meant to be this long, raise it with "
            f"{MAX_LINE_BYTES_ENV}=<bytes> (max_line_bytes= in Python)")


@dataclass(frozen=True)
class BadBytes:
    """Where the first byte that is not UTF-8 sits: line, character column, byte offset in the file."""

    line: int
    column: int
    offset: int
    byte: int
    utf16: bool

    def error(self, path: str, field: str | None = None) -> InputError:
        """The error; `field` (when the record still parses) is named in the text, as bytes are decoded before
        fields exist (`InputError.field` stays None, as for every error found while reading bytes)."""
        hint = ("the file is UTF-16 (it starts with a UTF-16 byte-order mark): re-save it as UTF-8"
                if self.utf16 else _SAVE_AS_UTF8)
        where = f" in field {field!r}" if field is not None else ""
        return InputError(f"not valid UTF-8 (byte 0x{self.byte:02x} at column {self.column}){where} at byte offset "
                          f"{self.offset} of the file; {hint}", path=path, line=self.line)


def decode_line(raw: bytes, *, path: str, line: int, offset: int, utf16: bool) -> tuple[str, BadBytes | None]:
    """One line as text, and where its first undecodable byte is (the text then holds surrogate escapes).

    A NUL byte is valid UTF-8 but no text file holds one: it fails here, naming the likely cause.
    """
    try:
        text, problem = raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        text = raw.decode("utf-8", "surrogateescape")
        column = 1 + len(raw[: error.start].decode("utf-8"))
        problem = BadBytes(line, column, offset + error.start, raw[error.start], utf16)
    if problem is None and "\x00" in text:
        raise InputError(f"NUL byte at column {text.index(chr(0)) + 1}: this is not UTF-8 text (UTF-16 without a "
                         "byte-order mark, or a binary file?); re-save the file as UTF-8", path=path, line=line)
    return text, problem


def decode_utf8(data: bytes, *, path: str) -> str:
    """A whole file's text (a leading BOM dropped); a bad byte raises InputError naming its line and column."""
    skip = len(BOM) if data.startswith(BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        at = skip + error.start
        start = data.rfind(b"\n", 0, at) + 1
        start += skip if start == 0 else 0
        column = 1 + len(data[start:at].decode("utf-8"))
        bad = BadBytes(1 + data.count(b"\n", 0, at), column, at, data[at], data.startswith(UTF16_BOMS))
        raise bad.error(path) from None


def open_bytes(path: str | Path) -> BinaryIO:
    """The file opened for reading bytes; a missing or unreadable file raises InputError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a task file", path=str(path)) from None
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror}", path=str(path)) from None


def read_bytes(path: str | Path) -> tuple[str, bytes]:
    """The file's display name and bytes (for JSON documents, which are parsed whole)."""
    with open_bytes(path) as handle:
        return str(path), handle.read()


def physical_lines(path: str | Path, limit: int | None) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, bytes with the line end) of each line, reading at most `limit` + 2 bytes at a time
    (None: no limit).

    A longer line is measured in chunks and refused with its size, never held in memory.
    """
    with open_bytes(path) as handle:
        number = offset = 0
        while raw := handle.readline(-1 if limit is None else limit + 2):
            number += 1
            if limit is not None and len(raw) > limit and len(raw.rstrip(b"\r\n")) > limit:
                size = len(raw.rstrip(b"\r\n"))
                if not raw.endswith(b"\n") and len(raw) == limit + 2:
                    while chunk := handle.readline(_CHUNK):
                        size += len(chunk)
                        if chunk.endswith(b"\n"):
                            size -= len(chunk) - len(chunk.rstrip(b"\r\n"))
                            break
                lone_cr = (" (its lines seem to end with a lone \\r: convert them to \\n)"
                           if b"\r" in raw.rstrip(b"\r\n") else "")
                raise InputError(f"the line is {size:,} bytes, too long for one example{lone_cr}; "
                                 f"{raise_hint(limit)}", path=str(path), line=number)
            yield number, offset, raw
            offset += len(raw)


_JSON_TYPE_NAMES = {dict: "an object", list: "an array", type(None): "null"}
SURROGATE = re.compile("[\udc80-\udcff]")  # an undecodable byte, kept by the 'surrogateescape' handler


def json_type_name(value: Any) -> str:
    """'an object', 'an array', 'null' or the Python type's name: what a JSON value is, for messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def jsonl_records(path: str | Path, limit: int | None = None, *,
                  live: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; bad bytes, bad JSON, non-objects and a line
    over `limit` bytes (None: no limit) fail with the file and line.

    The one JSONL reader (task files, PAS pairs and corpora, a run directory's records). `live`: the file may be
    growing (a running run appends to it), so a last line without its newline that does not parse yet is skipped.
    """
    path = str(path)
    utf16 = False
    for number, offset, raw in physical_lines(path, limit):
        unfinished = live and not raw.endswith(b"\n")
        utf16 = utf16 or (number == 1 and raw.startswith(UTF16_BOMS))
        skip = len(BOM) if raw.startswith(BOM) else 0
        text, problem = decode_line(raw[skip:].rstrip(b"\r\n"), path=path, line=number, offset=offset + skip,
                                     utf16=utf16)
        if problem is not None:
            raise problem.error(path, field=_field_with_bad_bytes(text))
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            if unfinished:
                return
            raise InputError(f"invalid JSON: {error.msg} (column {error.colno})", path=path, line=number) from None
        if not isinstance(record, dict):
            raise InputError(f"expected a JSON object per line, got {json_type_name(record)}", path=path, line=number)
        yield number, record


def _field_with_bad_bytes(text: str) -> str | None:
    """The field of a JSON line whose value holds the undecodable byte, when the line still parses."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if isinstance(record, dict):
        for key, value in record.items():
            if isinstance(value, str) and SURROGATE.search(value):
                return str(key)
    return None
