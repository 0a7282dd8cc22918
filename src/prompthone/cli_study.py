"""`prompthone study`: the hand grid of system messages vs optimizers at the same budget (thin over `grid_study`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from prompthone.cli_common import (
    CalibrationOpt,
    MetaModelOpt,
    ModelOpt,
    ScoringOpt,
    SeedOpt,
    TaskSource,
    announced_meta_model,
    guard,
    out,
    task_options,
)


@guard
@task_options
def study(
    source: TaskSource,
    grid: Annotated[str | None, typer.Option(help="YAML file with lists openers / task_lines / closers (null = "
                                             "none), or the preset battle-gollapudi (Battle & Gollapudi's math "
                                             "grid; use it with --task gen:arithmetic); default: our 5 × 3 × 4 "
                                             "grid.")] = None,
    method: Annotated[list[str] | None, typer.Option("--method", "-M", help="Optimizer run at the grid's budget, "
                                                     "optionally with knobs (`apo:selector=ucb`); repeatable. "
                                                     "Default: ape (the battle-gollapudi preset: GEPA evolving "
                                                     "the system message and an answer prefix).")] = None,
    model: ModelOpt = "local",
    meta_model: MetaModelOpt = None,
    cot_tokens: Annotated[int | None, typer.Option(help="Reasoning tokens of the chain-of-thought variants (0: no "
                                                   "CoT variants). Default: 64 (the battle-gollapudi preset: "
                                                   "128).")] = None,
    halving: Annotated[bool, typer.Option("--halving/--no-halving", help="Successive halving over dev slices "
                                          "instead of every variant on the whole dev split.")] = False,
    eta: Annotated[int, typer.Option(help="Halving: keep the top 1/eta per rung; slices grow by eta.")] = 3,
    min_slice: Annotated[int, typer.Option(help="Halving: fewest dev examples in the first slice.")] = 10,
    seed: SeedOpt = 0,
    runs_dir: Annotated[Path, typer.Option(help="Where the study directory is written.")] = Path("runs"),
    scoring: ScoringOpt = "auto",
    calibration: CalibrationOpt = None,
    top: Annotated[int, typer.Option(help="Hand prompts shown in the table.")] = 10,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
) -> None:
    """Score a grid of hand-written system messages (opener × task line × closer, ± CoT) on dev, then run
    optimizers at the same budget and show where their prompts rank (Battle & Gollapudi 2024).

    With an embedded --model and no --meta-model, the optimizers propose with the strongest embedded model
    installed (said on stderr), as in `optimize`. --calibration calibrates every hand prompt (its calls count in
    the grid's budget) and every optimizer run alike.
    """
    from prompthone.grid_study import study as run
    from prompthone.grid_study.runner import resolve_grid
    from prompthone.prompts.calibration import DEFAULT_CALIBRATION, check_calibration

    spec = resolve_grid(grid)  # a bad grid file is reported before the task or the model is loaded
    check_calibration(calibration or DEFAULT_CALIBRATION)
    task_obj = source.load(seed)
    meta_model = meta_model or announced_meta_model(model, quiet or as_json)
    result = run(task_obj, model, grid=spec, methods=method or None, meta_model=meta_model, cot_tokens=cot_tokens,
                 halving=halving, eta=eta, min_slice=min_slice, seed=seed, run_dir=runs_dir,
                 cache=source.cache, scoring=scoring,  # type: ignore[arg-type]
                 calibration=calibration or DEFAULT_CALIBRATION, progress=not quiet and not as_json)
    if as_json:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return
    out.print(_top_table(result, top))
    out.print(_ranking_table(result))
    _print_footer(result)


def _top_table(result: Any, top: int) -> Table:
    from prompthone.grid_study.grid import short

    g = result.grid_outcome
    table = Table(title=f"top {min(top, len(g.rows))} of {len(g.rows)} hand prompts on {result.task} (dev, "
                        f"n={g.n_dev}, calibration: {g.calibration})")
    for col in ("rank", "opener", "task line", "closer", "answering", "dev", "n"):
        table.add_column(col, justify="right" if col in ("rank", "dev", "n") else "left", overflow="fold")
    for r in g.rows[:top]:
        table.add_row(str(r.rank), short(r.opener, 34), short(r.task_line, 30), short(r.closer, 30),
                      "CoT" if r.cot else "direct", f"{r.dev_score:.3f}", str(r.n))
    return table


def _ranking_table(result: Any) -> Table:
    table = Table(title=f"optimizers at the grid's budget ({result.grid_outcome.calls} model calls)")
    for col in ("method", "calls used", "dev", "rank among hand prompts", "test", "best hand test"):
        table.add_column(col, justify="left" if col == "method" else "right", overflow="fold")
    for o in result.optimizers:
        table.add_row(o.label, str(o.spend["calls"]), f"{o.dev_score:.3f}", o.ranking.describe(),
                      f"{o.test_score:.3f}", f"{result.best_hand_test_score:.3f}")
    return table


def _print_footer(result: Any) -> None:
    g = result.grid_outcome
    spend = g.spend
    out.print(f"grid: {spend['calls']} calls ({spend['new_calls']} new, {spend['cache_hits']} cached), "
              f"{g.wall_time_s:.1f}s" + (f"; halving saved {g.calls_saved} of {g.full_grid_calls} calls"
                                         if g.halving is not None else ""), highlight=False)
    if g.halving is not None:
        from prompthone.grid_study.outputs import rung_line

        for rung in g.rungs:
            out.print(rung_line(rung), highlight=False)
    out.print(f"meta model: {result.meta_model}", highlight=False, markup=False)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    out.print(f"study directory: {result.run_dir} (summary.md, table.csv, table.json"
              + (", heatmap.png)" if "heatmap" in result.files else ")"), highlight=False)
