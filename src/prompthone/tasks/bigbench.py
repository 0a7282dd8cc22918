"""BIG-bench JSON tasks (the source of BIG-bench Hard), read from the `bigbench==1.0.0` sdist.

The sdist (358 MB) is fetched once (never installed: its dependencies are huge) with `pip download
--no-deps` (with an older pip run from its wheel where the installed pip refuses it), streamed through once to
extract every `benchmark_tasks/<task>[/<subtask>]/task.json` into the cache, and indexed; later loads read
only the cached JSON files. The cache lives in `$PROMPTHONE_CACHE_DIR/bigbench` (default
`~/.cache/prompthone/bigbench`); `$PROMPTHONE_BIGBENCH_SDIST` may name an already-downloaded tarball. The pip
download and the progress bar are shared with the dataset wheels (`prompthone.tasks.pypi_fetch`).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError, PrompthoneError
from prompthone.paths import default_cache_dir
from prompthone.tasks.example import Example, Task, split_examples
from prompthone.tasks.metrics import parse_number
from prompthone.tasks.pypi_fetch import pip_download, progress, write_atomic

logger = logging.getLogger(__name__)

SDIST_REQUIREMENT = "bigbench==1.0.0"
SDIST_FILENAME = "bigbench-1.0.0.tar.gz"
MAX_TASK_BYTES = 50 * 1024 * 1024
MAX_LABELS = 10
MAX_SHARED_LABELS = 50
INDEX_VERSION = 1
_TASK_MEMBER = re.compile(r"^[^/]+/bigbench/benchmark_tasks/(\w[\w.-]*)/(?:(\w[\w.-]*)/)?task\.json$")

_PROGRAMMATIC_BBH = {"boolean_expressions": "boolean_expressions", "multistep_arithmetic_two": "arithmetic",
                     "web_of_lies": "boolean_expressions"}


def _best_choice(scores: dict[str, Any]) -> str:
    """The highest-scored choice; the first one wins a tie."""
    return max(scores, key=lambda choice: float(scores[choice]))


def _alternatives(target: Any) -> list[str]:
    """The accepted answers of a `target`: a string, or a list of strings (first = preferred)."""
    items = target if isinstance(target, list) else [target]
    return [str(item).strip() for item in items if item is not None and str(item).strip()]


def _has_scores(item: dict[str, Any]) -> bool:
    scores = item.get("target_scores")
    return isinstance(scores, dict) and bool(scores)


def _usable(item: Any) -> bool:
    """An example we can use: a non-empty input and either target_scores or a target."""
    if not isinstance(item, dict) or not isinstance(item.get("input"), str) or not item["input"].strip():
        return False
    return _has_scores(item) or bool(_alternatives(item.get("target")))


def _meta(item: dict[str, Any], index: int) -> dict[str, Any]:
    """The example's extra fields (e.g. a comment or a difficulty) plus its index in the task file."""
    extra = {key: value for key, value in item.items() if key not in ("input", "target", "target_scores")}
    return {**extra, "index": index}


def _choice_example(item: dict[str, Any], index: int) -> Example:
    return Example(item["input"].strip(), _best_choice(item["target_scores"]).strip(), _meta(item, index))


def _letter_options(raw: list[dict[str, Any]]) -> tuple[list[Example], tuple[str, ...]]:
    """Per-example choices as lettered options appended to the input; labels '(A)', '(B)', ..."""
    width = max(len(item["target_scores"]) for item in raw)
    letters = [chr(ord("A") + i) for i in range(width)]
    examples = []
    for index, item in enumerate(raw):
        choices = list(item["target_scores"])
        options = "\n".join(f"({letter}) {choice}" for letter, choice in zip(letters, choices, strict=False))
        target = f"({letters[choices.index(_best_choice(item['target_scores']))]})"
        examples.append(Example(f"{item['input'].strip()}\nOptions:\n{options}", target,
                                {**_meta(item, index), "choices": choices}))
    return examples, tuple(f"({letter})" for letter in letters)


def _classification(raw: list[dict[str, Any]]) -> tuple[list[Example], tuple[str, ...], str]:
    """Examples, labels and output-format line for a task whose examples all have target_scores.

    The choices are the labels (first-seen order) when there are at most MAX_LABELS of them, or when every
    example offers the same choices (up to MAX_SHARED_LABELS). Otherwise each example's choices are listed
    in its input as options (A), (B), ... and the letters are the labels; beyond 26 choices the task falls
    back to exact match on the choice text.
    """
    labels = tuple(dict.fromkeys(choice.strip() for item in raw for choice in item["target_scores"]))
    shared = all(len(item["target_scores"]) == len(labels) for item in raw)
    if len(labels) <= MAX_LABELS or (shared and len(labels) <= MAX_SHARED_LABELS):
        examples = [_choice_example(item, index) for index, item in enumerate(raw)]
        return examples, labels, f"Answer with exactly one of: {', '.join(labels)}."
    if max(len(item["target_scores"]) for item in raw) <= 26:
        examples, letters = _letter_options(raw)
        return examples, letters, f"Answer with the letter of the correct option: {', '.join(letters)}."
    return [_choice_example(item, index) for index, item in enumerate(raw)], (), ""


def _generation(raw: list[dict[str, Any]]) -> tuple[list[Example], str, str]:
    """Examples, metric and output-format line for a task with free-text targets.

    The target is the first accepted answer; when every example accepts a number (object_counting lists
    ['three', '3']), the number is the target and the metric is numeric_match.
    """
    answers = [_alternatives(item.get("target")) or [_best_choice(item["target_scores"]).strip()]
               for item in raw]
    numbers = [next((a for a in accepted if parse_number(a) is not None), None) for accepted in answers]
    numeric = all(number is not None for number in numbers)
    examples = []
    for index, (item, accepted, number) in enumerate(zip(raw, answers, numbers, strict=True)):
        meta = _meta(item, index)
        if len(accepted) > 1:
            meta["targets"] = accepted
        examples.append(Example(item["input"].strip(), number if numeric and number else accepted[0], meta))
    if numeric:
        return examples, "numeric_match", "Give the final answer as a number."
    return examples, "exact_match", ""


def task_from_json(data: dict[str, Any], name: str, *, seed: int = 0, limit: int | None = None,
                   fractions: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> Task:
    """Build a Task from a parsed BIG-bench task.json.

    All examples with `target_scores` -> classification scored by label_accuracy, target = highest-scored
    choice; otherwise `target` (a string, or a list whose first item is taken) -> exact_match, or
    numeric_match when every example accepts a number. The seed instruction is `task_prefix` (or `prefix`)
    when present, else the task description. `limit` keeps that many examples after a seeded shuffle.
    """
    raw = [item for item in data.get("examples", []) if _usable(item)]
    if not raw:
        raise ConfigError(f"{name} has no usable examples (each needs an input and a target)")
    if all(_has_scores(item) for item in raw):
        examples, labels, output_format = _classification(raw)
        metric = "label_accuracy" if labels else "exact_match"
    else:
        examples, metric, output_format = _generation(raw)
        labels = ()
    for example in examples:
        example.meta["source"] = name
    if limit is not None:
        random.Random(seed).shuffle(examples)
        examples = examples[:limit]
    train, dev, test = split_examples(examples, seed=seed, fractions=fractions)
    description = str(data.get("description", "")).strip()
    instruction = str(data.get("task_prefix") or data.get("prefix") or "").strip() or description
    return Task(name=name, train=train, dev=dev, test=test, metric=metric, labels=labels or None,
                instruction=instruction, output_format=output_format, description=description)


def cache_dir() -> Path:
    """The BIG-bench cache: `$PROMPTHONE_CACHE_DIR/bigbench`, else `~/.cache/prompthone/bigbench`."""
    return default_cache_dir() / "bigbench"


def _pip_can_download() -> bool:
    """Whether `python -m pip download` can fetch the sdist here.

    pip must be importable (uv-made environments often lack it), and recent pip releases (those that ship
    `pip/_internal/metadata/direct_references.py`, e.g. 26.3) refuse any PyPI sdist declaring a direct URL
    dependency, even for `download --no-deps`; bigbench 1.0.0 declares `bleurt @ file://...`.
    """
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        return False
    return not any((Path(location) / "_internal" / "metadata" / "direct_references.py").is_file()
                   for location in spec.submodule_search_locations)


# The newest pip that still downloads an sdist declaring a direct-URL dependency (see `_pip_can_download`).
OLDER_PIP = "pip<26.3"


def _pip_download(target_dir: Path, pip: list[str] | None = None) -> str | None:
    """Run `pip download --no-deps` into `target_dir`; None on success, else the tail of pip's output."""
    return pip_download(SDIST_REQUIREMENT, target_dir, SDIST_FILENAME, binary=False, size="358 MB", pip=pip)


def _older_pip_download(target_dir: Path) -> str | None:
    """Fetch an older pip wheel with pip itself and run it from the wheel (pip supports `python pip.whl/pip`).

    Used when the installed pip refuses the sdist; everything still goes through pip and its index.
    """
    with tempfile.TemporaryDirectory() as tmp:
        code = subprocess.call([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                "--progress-bar", "off", OLDER_PIP, "-d", tmp],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wheels = sorted(Path(tmp).glob("pip-*.whl"))
        if code != 0 or not wheels:
            return f"could not fetch {OLDER_PIP} (exit code {code})"
        return _pip_download(target_dir, [sys.executable, str(wheels[0] / "pip")])


def fetch_sdist(target_dir: Path) -> Path:
    """The bigbench sdist, downloaded once into `target_dir` (never installed) and returned as a path.

    `$PROMPTHONE_BIGBENCH_SDIST` may name an already-downloaded tarball. Otherwise `pip download --no-deps`
    fetches it, with an older pip (run from its wheel) where the installed pip refuses this sdist.
    """
    local = os.environ.get("PROMPTHONE_BIGBENCH_SDIST")
    if local:
        if not Path(local).is_file():
            raise ConfigError(f"PROMPTHONE_BIGBENCH_SDIST={local} is not a file; unset it or fix the path")
        return Path(local)
    sdist = target_dir / SDIST_FILENAME
    if sdist.is_file():
        return sdist
    target_dir.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s (about 358 MB, once) into %s", SDIST_REQUIREMENT, target_dir)
    failure = _pip_download(target_dir) if _pip_can_download() else "the installed pip refuses this sdist"
    if failure is not None:
        logger.info("pip download: %s; retrying with %s", failure, OLDER_PIP)
        failure = _older_pip_download(target_dir)
    if failure is not None:
        raise PrompthoneError(
            f"could not download {SDIST_REQUIREMENT} ({failure}). Run `pip download --no-deps --no-binary :all: "
            f"{SDIST_REQUIREMENT} -d {target_dir}` with pip < 26.3 (or point PROMPTHONE_BIGBENCH_SDIST at the "
            "tarball) and retry.")
    return sdist


def extract_tasks(sdist: Path, tasks_dir: Path) -> dict[str, str]:
    """Stream through the tarball once, copy every task.json (≤ 50 MB) into `tasks_dir`, return name -> path.

    Names are `<task>` or `<task>/<subtask>`; paths are relative to `tasks_dir`.
    """
    found: dict[str, str] = {}
    with open(sdist, "rb") as raw, progress("Extracting BIG-bench tasks", sdist.stat().st_size) as update, \
            tarfile.open(fileobj=raw, mode="r|gz") as archive:
        for member in archive:
            update(raw.tell())
            match = _TASK_MEMBER.match(member.name)
            if match is None or not member.isfile():
                continue
            name = "/".join(part for part in match.groups() if part)
            if member.size > MAX_TASK_BYTES:
                logger.info("skipping BIG-bench task %s: task.json is %d MB", name, member.size // 2**20)
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                write_atomic(tasks_dir / name / "task.json", handle.read())
                found[name] = f"{name}/task.json"
    return dict(sorted(found.items()))


def _read_index(root: Path) -> dict[str, str] | None:
    try:
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
        return None
    tasks = index.get("tasks")
    return tasks if isinstance(tasks, dict) else None


def ensure_cache() -> dict[str, str]:
    """The task index (name -> relative path), downloading and extracting the sdist on first use."""
    root = cache_dir()
    index = _read_index(root)
    if index is not None:
        return index
    started = time.monotonic()
    sdist = fetch_sdist(root / "sdist")
    logger.info("extracting BIG-bench task files from %s", sdist)
    try:
        tasks = extract_tasks(sdist, root / "tasks")
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise PrompthoneError(f"{sdist} is not a readable tar.gz ({error}); delete it and retry") from None
    if not tasks:
        raise PrompthoneError(f"no BIG-bench task.json files found in {sdist}; delete it and retry")
    document = {"version": INDEX_VERSION, "sdist": SDIST_FILENAME, "tasks": tasks}
    write_atomic(root / "index.json", json.dumps(document, indent=1).encode())
    logger.info("cached %d BIG-bench tasks in %s (%.1f s)", len(tasks), root, time.monotonic() - started)
    return tasks


def list_bigbench(*, download: bool = False) -> list[str]:
    """Names of the cached BIG-bench JSON tasks; empty until first use unless `download=True`."""
    index = ensure_cache() if download else _read_index(cache_dir())
    return sorted(index or {})


def resolve_name(name: str, index: dict[str, str]) -> str:
    """The index key for `name`; accepts 'task/subtask', 'task:subtask' and BBH's 'task_subtask' spellings."""
    wanted = name.strip().replace(":", "/")
    if wanted in index:
        return wanted
    by_underscore = {key.replace("/", "_"): key for key in index}
    if wanted in by_underscore:
        return by_underscore[wanted]
    close = difflib.get_close_matches(wanted, list(index), n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    if wanted in _PROGRAMMATIC_BBH:
        hint = (f"; BBH's {wanted} comes from a programmatic BIG-bench task with no task.json"
                f" (try gen:{_PROGRAMMATIC_BBH[wanted]})")
    raise ConfigError(f"unknown BIG-bench task {name!r}{hint} (list_bigbench() lists all {len(index)} tasks)")


def load_bigbench(name: str, *, seed: int = 0, limit: int | None = None,
                  fractions: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> Task:
    """A BIG-bench JSON task as a Task with seeded splits; downloads and caches the sdist on first use.

    Examples with `target_scores` become classification (label_accuracy), examples with `target` exact or
    numeric match; see `task_from_json` for the details.
    """
    index = ensure_cache()
    key = resolve_name(name, index)
    path = cache_dir() / "tasks" / index[key]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the cached task ({error}); delete {cache_dir() / 'index.json'} "
                         "to re-extract", path=str(path)) from None
    if not data.get("examples"):
        subtasks = [other for other in index if other.startswith(key + "/")]
        listing = ", ".join(subtasks) if subtasks else "none"
        raise ConfigError(f"BIG-bench task {key!r} has no examples of its own; choose a subtask: {listing}")
    return task_from_json(data, f"bigbench:{key}", seed=seed, limit=limit, fractions=fractions)


def bbh(name: str, *, seed: int = 0, limit: int | None = None) -> Task:
    """Short alias of `load_bigbench`, e.g. `prompthone.tasks.bbh("navigate")`."""
    return load_bigbench(name, seed=seed, limit=limit)
