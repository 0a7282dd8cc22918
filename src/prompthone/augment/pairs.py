"""Training pairs (prompt → complement or rewrite) and the JSONL files that hold them between stages."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompthone.augment.designs import RENAMED
from prompthone.errors import InputError
from prompthone.tasks.lines import jsonl_records


@dataclass(frozen=True)
class Pair:
    """One curated training pair: a user prompt, what the augmenter should write for it, and its category.

    `design` is 'pas' (output = complement) or 'rewrite' (output = rewritten prompt); `meta` carries provenance
    (source task, quality score, critique rounds). Files written before the rename say 'bpo' for 'rewrite':
    `read_pairs` maps it.
    """

    prompt: str
    output: str
    category: str = ""
    design: str = "pas"
    meta: dict[str, Any] = field(default_factory=dict)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL atomically (temp file + rename): a crash never leaves half a stage file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is an InputError."""
    return jsonl_records(path)


def _text(record: dict[str, Any], name: str, path: Path, line: int) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InputError("missing or empty (expected a non-empty string)", path=str(path), line=line, field=name)
    return value


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from a JSONL file with `prompt` and `output` (or `complement`) fields (design 'bpo' read as 'rewrite')."""
    pairs = []
    for line, record in read_jsonl(path):
        output_field = "output" if "output" in record else "complement"
        design = str(record.get("design", "pas"))
        pairs.append(Pair(prompt=_text(record, "prompt", path, line), output=_text(record, output_field, path, line),
                          category=str(record.get("category", "")), design=RENAMED.get(design, design),
                          meta=dict(record.get("meta") or {})))
    if not pairs:
        raise InputError("no pairs found", path=str(path))
    return pairs


def write_pairs(path: Path, pairs: Iterable[Pair]) -> int:
    """Write pairs as JSONL (the format `read_pairs` reads)."""
    return write_jsonl(path, (asdict(p) for p in pairs))


def prompt_text(record: dict[str, Any], path: Path, line: int, field_name: str = "prompt") -> str:
    """The prompt of one JSONL record: `field_name`, else the first of `input`, `text`, `instruction` present."""
    name = next((n for n in (field_name, "input", "text", "instruction") if n in record), field_name)
    return _text(record, name, path, line)
