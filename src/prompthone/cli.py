"""The `prompthone` command: a thin layer over the Python API. Errors become one line and exit code 2."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from prompthone.errors import InputError, PrompthoneError

app = typer.Typer(
    name="prompthone", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Find the prompt that makes [bold]your[/] model do best on [bold]your[/] task. "
         "Runs offline on the embedded SmolLM2-135M model by default, or on any OpenAI-compatible server.")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

TaskOpt = Annotated[str, typer.Option("--task", "-t", help="A .jsonl/.csv file, gen:<name> or bbh:<name> "
                                      "(see `prompthone tasks`).")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Task model: local | gguf:<path> | "
                                       "openai:<base_url>/<model> (see `prompthone models`).")]
MetaModelOpt = Annotated[str | None, typer.Option(help="Model that proposes prompts (default: --model).")]
SeedOpt = Annotated[int, typer.Option(help="Seed for splits, sampling and the search; same seed + cache = "
                                      "same run.")]
ScoringOpt = Annotated[str, typer.Option(help="auto (label log-probs for classification when the backend "
                                         "can) | labels | generate.")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Call-cache file (default "
                                               "$PROMPTHONE_CACHE_DIR/calls.sqlite).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")]
InputFieldOpt = Annotated[str, typer.Option(help="Field (JSONL key or CSV column) holding the input.")]
TargetFieldOpt = Annotated[str, typer.Option(help="Field holding the expected output.")]
LabelsOpt = Annotated[str | None, typer.Option(help="Comma-separated label set (classification); inferred "
                                               "from the targets when omitted.")]
InstructionOpt = Annotated[str | None, typer.Option(help="Seed instruction (default: the task's own).")]
LimitOpt = Annotated[int | None, typer.Option(help="Use at most this many examples.")]


def _guard(fn: F) -> F:
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


def _load(task: str, seed: int, input_field: str, target_field: str, labels: str | None,
          instruction: str | None, limit: int | None) -> Any:
    from prompthone.tasks import load_task

    label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    return load_task(task, seed=seed, input_field=input_field, target_field=target_field, labels=label_list,
                     instruction=instruction, limit=limit)


def _cache(no_cache: bool, cache: Path | None) -> bool | Path:
    return False if no_cache else (cache if cache is not None else True)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected KEY=VALUE, got {pair!r}", field="--option")
        options[key.strip()] = value.strip()
    return options


@app.command()
@_guard
def optimize(
    task: TaskOpt,
    method: Annotated[str, typer.Option(help="Optimization method (see `prompthone methods`).")] = "ape",
    model: ModelOpt = "local",
    meta_model: MetaModelOpt = None,
    budget: Annotated[int | None, typer.Option(help="Most model calls the search may make (cache hits are "
                                               "free).")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Most tokens the search may use.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="Method knob KEY=VALUE, "
                                                     "repeatable (e.g. -o num_subsamples=3).")] = None,
    seed: SeedOpt = 0,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories are written.")] = Path("runs"),
    scoring: ScoringOpt = "auto",
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    input_field: InputFieldOpt = "input",
    target_field: TargetFieldOpt = "target",
    labels: LabelsOpt = None,
    instruction: InstructionOpt = None,
    limit: LimitOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Optimize the prompt for a task and print the seed and best prompts' scores."""
    from prompthone.api import optimize as run
    from prompthone.evaluation.budget import Budget

    task_obj = _load(task, seed, input_field, target_field, labels, instruction, limit)
    result = run(task_obj, method=method, model=model, meta_model=meta_model,
                 budget=Budget(calls=budget, tokens=budget_tokens), seed=seed,
                 options=_parse_options(option or []), run_dir=runs_dir, cache=_cache(no_cache, cache),
                 scoring=scoring,  # type: ignore[arg-type]
                 progress=not quiet and not as_json)
    if as_json:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return
    table = Table(title=f"{result.method} on {result.task}", show_header=True)
    table.add_column("prompt")
    table.add_column("dev", justify="right")
    table.add_column("test", justify="right")
    table.add_row("seed", f"{result.seed_dev_score:.3f}", f"{result.seed_test_score:.3f}")
    table.add_row("best", f"{result.best_dev_score:.3f}", f"{result.test_score:.3f}")
    out.print(table)
    out.print(f"[bold]best instruction:[/] {result.best_prompt.instruction}", highlight=False)
    spend, final = result.spend, result.final_spend
    out.print(f"search: {spend['calls']} calls ({spend['new_calls']} new, {spend['cache_hits']} cached), "
              f"{spend['tokens']} tokens ({result.stopped_reason}); final scoring: {final['calls']} calls "
              f"({final['new_calls']} new); {result.wall_time_s:.1f}s", highlight=False)
    out.print(f"run directory: {result.run_dir}", highlight=False)


@app.command()
@_guard
def compare(
    task: TaskOpt,
    method: Annotated[list[str] | None, typer.Option("--method", "-M", help="A method, optionally with knobs: "
                                                     "`apo:selector=ucb,rounds=2`; repeatable. Default: seed, ape, "
                                                     "opro and apo with each selector.")] = None,
    model: ModelOpt = "local",
    meta_model: MetaModelOpt = None,
    budget: Annotated[int, typer.Option(help="Task-model calls each method may make per seed.")] = 400,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0 .. N-1) per method.")] = 3,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/dev/test split, the same for every run.")] = 0,
    runs_dir: Annotated[Path, typer.Option(help="Where the comparison directory is written.")] = Path("runs"),
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    input_field: InputFieldOpt = "input",
    target_field: TargetFieldOpt = "target",
    labels: LabelsOpt = None,
    instruction: InstructionOpt = None,
    limit: LimitOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Compare methods on one task: same model, splits and task-call budget, over several seeds."""
    from prompthone.compare import DEFAULT_METHODS, summarize
    from prompthone.compare import compare as run

    task_obj = _load(task, split_seed, input_field, target_field, labels, instruction, limit)
    rows, path = run(task_obj, method or list(DEFAULT_METHODS), model=model, meta_model=meta_model,
                     task_calls=budget, seeds=range(seeds), run_dir=runs_dir, cache=_cache(no_cache, cache),
                     progress=not quiet)
    table = Table(title=f"{task_obj.name}: {seeds} seeds, {budget} task-model calls each")
    for col in ("method", "test mean ± std", "dev mean ± std", "task calls", "meta calls", "tokens", "wall s"):
        table.add_column(col, justify="left" if col == "method" else "right", overflow="fold")
    for s in summarize(rows):
        table.add_row(s["method"], f"{s['test_mean']:.3f} ± {s['test_std']:.3f}",
                      f"{s['dev_mean']:.3f} ± {s['dev_std']:.3f}", f"{s['task_calls']:.0f}",
                      f"{s['meta_calls']:.0f}", f"{s['tokens']:.0f}", f"{s['wall_time_s']:.1f}")
    out.print(table)
    out.print(f"written: {path / 'compare.md'} and {path / 'compare.json'}", highlight=False)


@app.command("eval")
@_guard
def eval_(
    task: TaskOpt,
    prompt_file: Annotated[Path | None, typer.Option(help="A prompt: JSON (a Prompt, or a run's result.json) "
                                                     "or a text file holding the instruction.")] = None,
    model: ModelOpt = "local",
    split: Annotated[str, typer.Option(help="train | dev | test")] = "test",
    seed: SeedOpt = 0,
    scoring: ScoringOpt = "auto",
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    input_field: InputFieldOpt = "input",
    target_field: TargetFieldOpt = "target",
    labels: LabelsOpt = None,
    instruction: InstructionOpt = None,
    limit: LimitOpt = None,
    show: Annotated[int, typer.Option(help="Print this many per-example results.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score one prompt (the task's seed prompt by default) on a split."""
    from prompthone.api import evaluate
    from prompthone.prompts.io import read_prompt_file

    task_obj = _load(task, seed, input_field, target_field, labels, instruction, limit)
    prompt = read_prompt_file(prompt_file, task_obj) if prompt_file is not None else None
    result = evaluate(task_obj, prompt, model, split=split, cache=_cache(no_cache, cache),
                      scoring=scoring, progress=not quiet)  # type: ignore[arg-type]
    out.print(f"{task_obj.name} [{split}, n={result.n}] {task_obj.metric}: [bold]{result.score:.4f}[/]")
    for r in result.examples[:show]:
        mark = "✓" if r.score >= 1.0 else "✗"
        out.print(f"{mark} target={r.target!r} prediction={r.prediction!r} :: {r.input[:80]!r}", highlight=False)


@app.command()
@_guard
def tasks() -> None:
    """List built-in tasks and the task sources prompthone can read."""
    from prompthone.tasks import list_tasks

    table = Table(show_header=True)
    table.add_column("task")
    table.add_column("description")
    for spec, description in list_tasks():
        table.add_row(spec, description)
    out.print(table)


@app.command()
@_guard
def models() -> None:
    """List model backends and what each can do."""
    from prompthone.models.registry import available_models

    table = Table(show_header=True)
    for col in ("spec", "description", "label scoring"):
        table.add_column(col)
    for info in available_models():
        table.add_row(info.spec, info.description, "yes" if info.capabilities.score else "no")
    out.print(table)


@app.command()
@_guard
def methods() -> None:
    """List optimization methods and their knobs (set with -o KEY=VALUE)."""
    from prompthone.optimizers import METHODS

    for name, cls in sorted(METHODS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        out.print(f"[bold]{name}[/]: {doc}")
        out.print("  " + ", ".join(f"{k}={v}" for k, v in cls.knobs().items()), highlight=False)


# PAS commands live in their own module (it imports the option types above, hence the late import).
from prompthone.cli_pas import augment as _augment  # noqa: E402
from prompthone.cli_pas import pas_app  # noqa: E402

app.add_typer(pas_app)
app.command("augment")(_augment)


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; the run directory holds everything recorded so far")
        sys.exit(130)


if __name__ == "__main__":
    main()
