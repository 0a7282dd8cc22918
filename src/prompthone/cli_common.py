"""What every `prompthone` command module shares: consoles, option types, the task options and the error guard.

Its own module so that command modules (`cli`, `cli_pas`) import it rather than each other: `python -m prompthone.cli`
runs cli.py as `__main__`, and a command module importing `prompthone.cli` would then load it a second time, half built.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from prompthone.errors import InputError, PrompthoneError
from prompthone.evaluation.prices import Price

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

TaskOpt = Annotated[str | None, typer.Option("--task", "-t", help="A .jsonl/.csv file, gen:<name> or bbh:<name> "
                                             "(see `prompthone tasks`). Required.", show_default=False)]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Task model: local | gguf:<path> | "
                                       "openai:<base_url>/<model> (see `prompthone models`).")]
MetaModelOpt = Annotated[str | None, typer.Option(help="Model that proposes prompts. Default: the strongest embedded "
                                                 "model installed when --model is an embedded one (said on stderr), "
                                                 "else --model.", show_default=False)]
SeedOpt = Annotated[int, typer.Option(help="Seed for splits, sampling and the search; same seed + cache = "
                                      "same run.")]
ScoringOpt = Annotated[str, typer.Option(help="auto (label log-probs for classification when the backend "
                                         "can) | labels | generate.")]
CalibrationOpt = Annotated[str | None, typer.Option(
    help="Label scoring only: divide each prompt's label prior out of its scores: none | contextual (content-free "
         "inputs, 3 calls per prompt) | batch (the first 32 train inputs, 32 calls per prompt). The found prompt "
         "keeps its prior. Default: none.", show_default=False)]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Call-cache file (default "
                                               "$PROMPTHONE_CACHE_DIR/calls.sqlite).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")]
InputFieldOpt = Annotated[str, typer.Option(help="Field (JSONL key or CSV column) holding the input.")]
TargetFieldOpt = Annotated[str, typer.Option(help="Field holding the expected output.")]
LabelsOpt = Annotated[str | None, typer.Option(help="Comma-separated label set (classification); inferred "
                                               "from the targets when omitted.")]
InstructionOpt = Annotated[str | None, typer.Option(help="Seed instruction (default: the task's own).")]
LimitOpt = Annotated[int | None, typer.Option(help="Use at most this many examples.")]
DevSizeOpt = Annotated[float | None, typer.Option(help="Dev split size: a count of examples, or a fraction of all "
                                                  "of them below 1 (default: 20%). Dev picks the best prompt.",
                                                  show_default=False)]
TestSizeOpt = Annotated[float | None, typer.Option(help="Test split size: a count, or a fraction below 1 (default: "
                                                   "40%). Test measures the gain: more examples resolve smaller "
                                                   "differences.", show_default=False)]
StoreOpt = Annotated[str | None, typer.Option(help="Run store: a SQLite file or a postgresql:// URL (default: "
                                              "<runs-dir>/prompthone.sqlite). Passwords are never written out.")]
ExecutorOpt = Annotated[str | None, typer.Option(help="Where the task model's calls run: local (this process) | ray "
                                                 "(Ray workers, each holding the model; extra ray). The call cache "
                                                 "stays here. Default: local; with --resume, the run's own.",
                                                 show_default=False)]
RayAddressOpt = Annotated[str | None, typer.Option(help="With --executor ray: the cluster, host:port of its head, "
                                                   "ray://host:port, or auto (the cluster `ray start` runs on this "
                                                   "machine). Default: $RAY_ADDRESS, else a new local cluster.",
                                                   show_default=False)]
RayWorkersOpt = Annotated[int | None, typer.Option(min=1, help="With --executor ray: how many workers (one model "
                                                   "each, one CPU each). Default: one per free CPU of the cluster.",
                                                   show_default=False)]


def guard(fn: F) -> F:
    """Run a command, turning our errors into one line on stderr and exit code 2 (no traceback)."""
    import functools

    from rich.markup import escape

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PrompthoneError as exc:
            # Escaped: messages quote user text and install hints such as prompthone[torch], not markup.
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class TaskSource:
    """The options every task command shares: where the task comes from, how to read it, and the call cache.

    One object instead of eight parameters, so that a new shared option is added here once, not to each command.
    `--task` is checked when the task is loaded, not by the parser, because `optimize --resume` needs none.
    """

    task: str | None = None
    input_field: str = "input"
    target_field: str = "target"
    labels: str | None = None
    instruction: str | None = None
    limit: int | None = None
    dev_size: float | None = None
    test_size: float | None = None
    cache_file: Path | None = None
    no_cache: bool = False

    def load(self, seed: int) -> Any:
        """The task, split with `seed` (`--labels` arrives as one comma-separated string)."""
        from prompthone.tasks import load_task

        if self.task is None:
            raise InputError("missing option: say which task with --task (see `prompthone tasks`)", field="--task")
        labels = [x.strip() for x in self.labels.split(",") if x.strip()] if self.labels else None
        return load_task(self.task, seed=seed, input_field=self.input_field, target_field=self.target_field,
                         labels=labels, instruction=self.instruction, limit=self.limit, dev_size=self.dev_size,
                         test_size=self.test_size)

    @property
    def cache(self) -> bool | Path:
        """`--no-cache` / `--cache FILE` as the API's `cache` argument (True: the default file)."""
        return cache_setting(self.no_cache, self.cache_file)


def cache_setting(no_cache: bool, cache: Path | None) -> bool | Path:
    """`--no-cache` / `--cache FILE` as the API's `cache` argument (True: the default file)."""
    return False if no_cache else (cache if cache is not None else True)


def executor_setting(executor: str | None, ray_address: str | None, ray_workers: int | None) -> Any:
    """`--executor` / `--ray-address` / `--ray-workers` as the API's `executor` argument (None: not given).

    Ray is not imported here: only a run that uses it does.
    """
    if executor not in (None, "local", "ray"):
        raise InputError(f"expected local or ray, got {executor!r}", field="--executor")
    if executor != "ray":
        if ray_address is not None or ray_workers is not None:
            raise InputError("--ray-address and --ray-workers apply with --executor ray", field="--executor")
        return executor
    from prompthone.models.ray_executor import RayExecutor

    return RayExecutor(address=ray_address, workers=ray_workers)


#: the command-line form of each TaskSource field: its option type (the default comes from the dataclass)
_TASK_OPTION_TYPES: dict[str, Any] = {
    "task": TaskOpt, "input_field": InputFieldOpt, "target_field": TargetFieldOpt, "labels": LabelsOpt,
    "instruction": InstructionOpt, "limit": LimitOpt, "dev_size": DevSizeOpt, "test_size": TestSizeOpt,
    "cache_file": CacheOpt, "no_cache": NoCacheOpt,
}


def task_options(fn: F) -> F:
    """Give a command the shared task options; it receives them as one `source: TaskSource` argument.

    Typer reads a command's parameters from its signature, so the wrapper shows the command's own parameters
    with the shared ones added (`--task` first, the rest after the command's own) and folds them back into a
    TaskSource when called. Every parameter is keyword-only, which is how Typer calls a command anyway.
    """
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "source"]
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_TASK_OPTION_TYPES[f.name],
                                default=inspect.Parameter.empty if f.default is MISSING else f.default)
              for f in fields(TaskSource)]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        source = TaskSource(**{p.name: kwargs.pop(p.name) for p in shared})
        return fn(source=source, **kwargs)

    wrapper.__signature__ = inspect.Signature([shared[0], *own, *shared[1:]])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def announced_meta_model(model: str, quiet: bool, *, role: str = "meta model",
                         option: str = "--meta-model") -> str | None:
    """The default meta model for `model` (`api.default_meta_model`), said on stderr when it is not the task model.

    `role` and `option` name the part it plays and the option that overrides it in that message (PAS's
    `augment` defaults its complement model the same way).
    """
    from prompthone.api import default_meta_model

    chosen = default_meta_model(model)
    if chosen is not None and not quiet:
        err.print(f"{role}: {chosen} (the strongest embedded model installed; {option} chooses another)",
                  highlight=False)
    return chosen


def read_prices(pairs: list[str], path: Path | None) -> dict[str, Price] | None:
    """`--prices FILE` then each `--price MODEL=INPUT,OUTPUT` over it (None when neither is given)."""
    from prompthone.evaluation.prices import load_prices, parse_price

    if not pairs and path is None:
        return None
    prices = load_prices(path) if path is not None else {}
    prices.update(parse_price(pair) for pair in pairs)
    return prices


def parse_options(pairs: list[str]) -> dict[str, str]:
    """Repeated `-o KEY=VALUE` as a dict; a pair without '=' is an input error naming `--option`."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected KEY=VALUE, got {pair!r}", field="--option")
        options[key.strip()] = value.strip()
    return options
