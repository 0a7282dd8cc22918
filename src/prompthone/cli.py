"""The `prompthone` command: a thin layer over the Python API. Errors become one line and exit code 2."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from prompthone.cli_common import (
    CalibrationOpt,
    ExecutorOpt,
    MetaModelOpt,
    ModelOpt,
    RayAddressOpt,
    RayWorkersOpt,
    ScoringOpt,
    SeedOpt,
    StoreOpt,
    TaskSource,
    announced_meta_model,
    err,
    executor_setting,
    guard,
    out,
    parse_options,
    read_prices,
    task_options,
)
from prompthone.cli_export import export as _export
from prompthone.cli_pas import augment as _augment
from prompthone.cli_pas import pas_app
from prompthone.cli_study import study as _study
from prompthone.errors import InputError
from prompthone.evaluation.prices import money_text as money

app = typer.Typer(
    name="prompthone", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Find the prompt that makes [bold]your[/] model do best on [bold]your[/] task. "
         "Runs offline on the embedded SmolLM2-135M model by default, or on any OpenAI-compatible server.")
app.add_typer(pas_app)
app.command("augment")(_augment)
app.command("study")(_study)
app.command("export")(_export)


@app.command()
@guard
@task_options
def optimize(
    source: TaskSource,
    method: Annotated[str, typer.Option(help="Optimization method (see `prompthone methods`); auto searches "
                                        "instruction × demos × calibration within the budget.")] = "auto",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Task model: local | gguf:<path> | "
                                              "openai:<base_url>/<model> (see `prompthone models`). Default: local; "
                                              "with --resume, the run's own.", show_default=False)] = None,
    meta_model: MetaModelOpt = None,
    resume: Annotated[str | None, typer.Option(help="Continue this run (an id from `prompthone runs`) from its last "
                                               "finished step, with its own task, method, options, budget and "
                                               "seed.")] = None,
    store: StoreOpt = None,
    mlflow: Annotated[str | None, typer.Option("--mlflow", metavar="TRACKING_URI", help="Also log the run to "
                                               "MLflow at this tracking URI (sqlite:///mlflow.db, http://host:5000, "
                                               "file:///path/mlruns): params, metrics per step, the best prompt. "
                                               "Needs the mlflow extra.")] = None,
    mlflow_experiment: Annotated[str, typer.Option(help="The MLflow experiment runs are logged to.")] = "prompthone",
    budget: Annotated[int | None, typer.Option(help="Most model calls the search may make (cache hits are "
                                               "free).")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Most tokens the search may use.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Most US dollars the search's calls may cost at the "
                                                     "prices given (--price/--prices; the task model needs one).")
                          ] = None,
    price: Annotated[list[str] | None, typer.Option("--price", metavar="MODEL=INPUT,OUTPUT", help="A model's "
                                                    "price in dollars per million input and output tokens "
                                                    "(repeatable; none is shipped): spend is then shown in money."
                                                    )] = None,
    prices: Annotated[Path | None, typer.Option(help="YAML/JSON file mapping model specs to {input, output} "
                                                "dollars per million tokens.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="Method knob KEY=VALUE, "
                                                     "repeatable (e.g. -o num_subsamples=3).")] = None,
    seed: SeedOpt = 0,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories are written.")] = Path("runs"),
    scoring: ScoringOpt = "auto",
    calibration: CalibrationOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what the method's setup and each step cost at "
                                          "these knobs on this task against the budget, and stop before any "
                                          "model is loaded.")] = False,
) -> None:
    """Optimize the prompt for a task and print the seed and best prompts' scores.

    Before the run it says what one step of the method costs against the budget (`--dry-run`: only that). Every
    step is recorded in the run store as it happens; a run stopped at any moment (Ctrl-C, a crash, a kill)
    continues with `--resume <run id>` (on the executor it ran on, unless --executor says otherwise).
    """
    from prompthone.api import optimize as run
    from prompthone.api import resume as continue_run
    from prompthone.evaluation.budget import Budget
    from prompthone.progress import fault_summary
    from prompthone.prompts.calibration import DEFAULT_CALIBRATION

    on = executor_setting(executor, ray_address, ray_workers)
    if resume is not None:
        given = [flag for flag, value in (("--task", source.task), ("--option", option), ("--budget", budget),
                                          ("--budget-tokens", budget_tokens), ("--budget-usd", budget_usd),
                                          ("--price", price), ("--prices", prices),
                                          ("--calibration", calibration)) if value]
        if given:
            raise InputError(f"--resume continues run {resume!r} with its own task, method, options, budget and "
                             f"seed; leave out {', '.join(given)}", field="--resume")
        explicit_cache = source.cache if source.no_cache or source.cache_file is not None else None
        result = continue_run(resume, store=store, run_dir=runs_dir, model=model, meta_model=meta_model,
                              cache=explicit_cache, progress=not quiet and not as_json, mlflow=mlflow,
                              mlflow_experiment=mlflow_experiment, executor=on)
    else:
        task_obj = source.load(seed)
        limits = Budget(calls=budget, tokens=budget_tokens, usd=budget_usd)
        priced = read_prices(price or [], prices)
        if dry_run or not (quiet or as_json):
            _print_estimate(task_obj, method, parse_options(option or []), limits, calibration or DEFAULT_CALIBRATION,
                            to=out if dry_run else err)
            if dry_run:
                return
        meta_model = meta_model or announced_meta_model(model or "local", quiet or as_json)
        result = run(task_obj, method=method, model=model or "local", meta_model=meta_model,
                     budget=limits, prices=priced, seed=seed,
                     options=parse_options(option or []), run_dir=runs_dir, store=store, cache=source.cache,
                     scoring=scoring, calibration=calibration or DEFAULT_CALIBRATION,  # type: ignore[arg-type]
                     progress=not quiet and not as_json, mlflow=mlflow, mlflow_experiment=mlflow_experiment,
                     executor=on)
    if as_json:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return
    table = Table(title=escape(f"{result.method} on {result.task}"), show_header=True)
    table.add_column("prompt")
    table.add_column("dev", justify="right")
    table.add_column("test", justify="right")
    table.add_row("seed", f"{result.seed_dev_score:.3f}", f"{result.seed_test_score:.3f}")
    table.add_row("best", f"{result.best_dev_score:.3f}", f"{result.test_score:.3f}")
    out.print(table)
    out.print(f"[bold]best instruction:[/] {escape(result.best_prompt.instruction)}", highlight=False)
    if result.best_prompt.calibration is not None:
        out.print(f"[bold]calibration:[/] {escape(result.best_prompt.calibration.describe())}", highlight=False)
    out.print(f"[bold]best vs seed on test:[/] {escape(result.improvement)}", highlight=False)
    if result.improvement_over_uncalibrated_seed is not None:
        out.print(f"[bold]best vs the uncalibrated seed on test:[/] "
                  f"{escape(result.improvement_over_uncalibrated_seed)}", highlight=False)
    spend, final = result.spend, result.final_spend
    out.print(f"search: {spend['calls']} calls ({spend['new_calls']} new, {spend['cache_hits']} cached), "
              f"{spend['tokens']} tokens{money(spend)} ({result.stopped_reason}); final scoring: {final['calls']} "
              f"calls ({final['new_calls']} new){money(final)}; {result.wall_time_s:.1f}s", highlight=False)
    faults = fault_summary(result.backend)
    if faults:
        out.print(faults, highlight=False)
    out.print(f"run directory: {result.run_dir}", highlight=False)


def _print_estimate(task: Any, method: str, options: dict[str, str], budget: Any, calibration: str, *,
                    to: Any) -> None:
    """The pre-run estimate (`run.estimate`): a step's cost at these knobs, and what the budget pays for."""
    from prompthone.optimizers import get_method
    from prompthone.run.estimate import estimate

    found = estimate(get_method(method).from_options(options), task, budget, calibration=calibration)
    for line in found.lines():
        to.print(f"estimate: {escape(line)}", highlight=False)


@app.command()
@guard
def runs(
    store: StoreOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default store lives.")] = Path("runs"),
    limit: Annotated[int, typer.Option(help="Show this many, newest first.")] = 20,
    status: Annotated[str | None, typer.Option(help="Only runs in this state: running | finished | failed | "
                                               "interrupted.")] = None,
) -> None:
    """List the runs of a store (newest first), with the ids `optimize --resume` and `report` take. A run still
    marked running whose heartbeat stopped (its process died without ending it) shows as "running (stale)":
    `optimize --resume ID` continues it."""
    from prompthone.run.driver import open_store
    from prompthone.store.heartbeat import is_stale

    with open_store(store, runs_dir) as db:
        found = db.list_runs(limit=limit, status=status)
        table = Table(title=f"runs in {db.url}")
        for col in ("id", "method", "task", "status", "seed", "best dev", "test", "created"):
            table.add_column(col, justify="right" if col in ("seed", "best dev", "test") else "left", overflow="fold")
        for r in found:
            result = r.result or {}
            state = f"{r.status} (stale)" if is_stale(r) else r.status
            table.add_row(r.id, r.method, r.task, state, str(r.seed), _fmt(result.get("best_dev_score")),
                          _fmt(result.get("test_score")), f"{r.created_at:%Y-%m-%d %H:%M:%S}")
    out.print(table if found else f"no runs in {db.url}", highlight=False)


@app.command()
@guard
def report(
    run: Annotated[str, typer.Argument(help="A run directory, or a run id of the store (see `prompthone runs`).")],
    store: StoreOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default store lives.")] = Path("runs"),
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the HTML file (default: "
                                                  "report.html in the run directory).")] = None,
) -> None:
    """Write one self-contained HTML report of a run: scores per step, lineage, best vs seed, per-example wins and
    losses, spend, and the method's own panels. Needs the report extra."""
    from prompthone.report import RunData, write_report

    if Path(run).is_dir():
        data = RunData.from_run_dir(run)
    else:
        from prompthone.report.from_store import run_data_from_store
        from prompthone.run.driver import open_store

        with open_store(store, runs_dir) as db:
            data = run_data_from_store(db, run)
        if out_file is None:
            out_file = runs_dir / data.run_id / "report.html"
    path = write_report(data, out_file)
    out.print(f"report: {path}", highlight=False)


@app.command()
@guard
def dashboard(
    store: StoreOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default store lives.")] = Path("runs"),
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8765,
) -> None:
    """Browse a run store in a web browser (read-only): runs, live runs, scores per step, candidates, wins and
    losses, comparisons. Needs the dashboard extra."""
    from prompthone.dashboard import serve

    serve(store if store is not None else str(runs_dir / "prompthone.sqlite"), host, port)


def _fmt(score: object) -> str:
    return f"{score:.3f}" if isinstance(score, float) else "–"


@app.command()
@guard
@task_options
def compare(
    source: TaskSource,
    method: Annotated[list[str] | None, typer.Option("--method", "-M", help="A method, optionally with knobs: "
                                                     "`apo:selector=ucb,rounds=2`; repeatable. Default: seed, auto, "
                                                     "ape, opro, apo with each selector, and apo's Monte-Carlo "
                                                     "baseline (apo:n_gradients=0).")] = None,
    model: ModelOpt = "local",
    meta_model: MetaModelOpt = None,
    budget: Annotated[int, typer.Option(help="Task-model calls each method may make per seed.")] = 400,
    price: Annotated[list[str] | None, typer.Option("--price", metavar="MODEL=INPUT,OUTPUT", help="A model's "
                                                    "price in dollars per million tokens (repeatable): each "
                                                    "method's cost is shown beside its tokens.")] = None,
    prices: Annotated[Path | None, typer.Option(help="YAML/JSON file of model prices (see optimize).")] = None,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0 .. N-1) per method.")] = 3,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/dev/test split, the same for every run.")] = 0,
    runs_dir: Annotated[Path, typer.Option(help="Where the comparison directory is written.")] = Path("runs"),
    calibration: CalibrationOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Compare methods on one task: same model, splits and task-call budget, over several seeds."""
    from prompthone.compare import DEFAULT_METHODS, mean_cell, summarize, tokens_cell, vs_seed_cell
    from prompthone.compare import compare as run
    from prompthone.prompts.calibration import DEFAULT_CALIBRATION

    task_obj = source.load(split_seed)
    meta_model = meta_model or announced_meta_model(model, quiet)
    rows, path = run(task_obj, method or list(DEFAULT_METHODS), model=model, meta_model=meta_model,
                     task_calls=budget, seeds=range(seeds), run_dir=runs_dir, cache=source.cache,
                     calibration=calibration or DEFAULT_CALIBRATION, progress=not quiet,
                     prices=read_prices(price or [], prices))
    table = Table(title=f"{task_obj.name}: {seeds} seeds, {budget} task-model calls each")
    for col in ("method", "test mean (95% CI)", "test std", "vs seed (paired, 95% CI, p)", "dev mean ± std",
                "task calls", "meta calls", "tokens", "wall s"):
        table.add_column(col, justify="left" if col == "method" else "right", overflow="fold")
    for s in summarize(rows, task_obj):
        table.add_row(s["method"], mean_cell(s), f"{s['test_std']:.3f}", vs_seed_cell(s),
                      f"{s['dev_mean']:.3f} ± {s['dev_std']:.3f}", f"{s['task_calls']:.0f}",
                      f"{s['meta_calls']:.0f}", tokens_cell(s), f"{s['wall_time_s']:.1f}")
    out.print(table)
    out.print(f"written: {path / 'compare.md'} and {path / 'compare.json'}", highlight=False)


@app.command("eval")
@guard
@task_options
def eval_(
    source: TaskSource,
    prompt_file: Annotated[Path | None, typer.Option(help="A prompt: JSON (a Prompt, or a run's result.json) "
                                                     "or a text file holding the instruction.")] = None,
    model: ModelOpt = "local",
    split: Annotated[str, typer.Option(help="train | dev | test")] = "test",
    seed: SeedOpt = 0,
    scoring: ScoringOpt = "auto",
    calibration: CalibrationOpt = None,
    show: Annotated[int, typer.Option(help="Print this many per-example results.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
) -> None:
    """Score one prompt (the task's seed prompt by default) on a split.

    A found prompt (a run's result.json) is scored with the calibration it carries; --calibration estimates one
    for a prompt without.
    """
    from prompthone.api import evaluate
    from prompthone.prompts.io import read_prompt_file

    on = executor_setting(executor, ray_address, ray_workers)
    task_obj = source.load(seed)
    prompt = read_prompt_file(prompt_file, task_obj) if prompt_file is not None else None
    result = evaluate(task_obj, prompt, model, split=split, cache=source.cache, scoring=scoring,  # type: ignore[arg-type]
                      calibration=calibration or "none", progress=not quiet, executor=on)
    out.print(f"{escape(f'{task_obj.name} [{split}, n={result.n}] {task_obj.metric}')}: [bold]{result.score:.4f}[/]")
    for r in result.examples[:show]:
        mark = "✓" if r.score >= 1.0 else "✗"
        out.print(f"{mark} target={r.target!r} prediction={r.prediction!r} :: {r.input[:80]!r}", highlight=False,
                  markup=False)


@app.command()
@guard
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
@guard
def models() -> None:
    """List model backends and what each can do."""
    from prompthone.models.registry import available_models

    table = Table(show_header=True)
    for col in ("spec", "description", "label scoring"):
        table.add_column(col)
    for info in available_models():
        table.add_row(info.spec, info.description, "yes" if info.capabilities.score else "no")
    out.print(table)
    from prompthone.models.embedded import EMBEDDED_MODELS, assembled_path, installed_status

    embedded = Table("embedded model", "weights", "status", show_header=True)
    for model in EMBEDDED_MODELS:
        embedded.add_row(model.spec, model.name, installed_status(model))
    out.print(embedded)
    out.print(f"assembled models are cached under {assembled_path(EMBEDDED_MODELS[-1]).parents[1]}", highlight=False)


@app.command()
@guard
def methods() -> None:
    """List optimization methods and their knobs (set with -o KEY=VALUE)."""
    from prompthone.optimizers import METHODS

    for name, cls in sorted(METHODS.items()):
        doc = " ".join(line.strip() for line in (cls.__doc__ or "").strip().split("\n\n")[0].splitlines())
        out.print(f"[bold]{name}[/]: {doc}")
        out.print("  " + ", ".join(f"{k}={v}" for k, v in cls.knobs().items()), highlight=False)
        for departure in cls.departures:
            out.print(f"  differs on purpose: {departure}", highlight=False)


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
