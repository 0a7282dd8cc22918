"""`prompthone export`: a run's found prompt in a form users deploy (thin over `prompthone.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from prompthone.cli_common import StoreOpt, guard, out


@guard
def export(
    run: Annotated[str, typer.Argument(help="A run directory (or its result.json), or a run id of the store.")],
    form: Annotated[str, typer.Option("--format", "-f", help="openai | jinja | promptfoo | dspy | mlflow.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the files (default: export/ in the "
                                                 "run directory).")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Read the written form back, send it through the run's "
                                         "task model on the test split and compare its predictions with "
                                         "prompthone's, example by example (not for dspy).")] = False,
    mlflow: Annotated[str | None, typer.Option("--mlflow", metavar="TRACKING_URI", help="The MLflow tracking URI "
                                               "the mlflow form registers the prompt at (extra mlflow).")] = None,
    name: Annotated[str | None, typer.Option(help="The MLflow prompt's name (default: prompthone-<task>, with "
                                             "characters MLflow refuses made '-').")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The task model --verify sends to (default: the "
                                              "run's own spec).")] = None,
    store: StoreOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default store lives.")] = Path("runs"),
) -> None:
    """Write a run's found prompt as OpenAI chat messages, a Jinja2 template, a promptfoo configuration (the test
    split as test cases), a DSPy Predict state, or an MLflow Prompt Registry entry, and say in one line each what
    the form cannot carry (label scoring, calibration, reasoning, an answer prefix). `--verify` shows the exported
    form scores the same as inside prompthone."""
    from prompthone.api import resolve_cache, resolve_model
    from prompthone.export import export as write
    from prompthone.export import verify_export
    from prompthone.export.source import found_prompt

    found = found_prompt(run, store=store, runs_dir=runs_dir)
    target = out_dir or (found.run_dir or runs_dir / found.run_id) / "export"
    result = write(found.prompt, form, found.task, out_dir=target, scoring=found.scoring,
                   model_spec=found.model_spec, mlflow=mlflow, name=name, tags=found.tags())
    for role, path in result.files.items():
        out.print(f"{role}: {escape(str(path))}", highlight=False)
    if result.registered:
        out.print(f"registered: {escape(result.registered)} at {escape(mlflow or '')}", highlight=False)
    for note in result.notes:
        out.print(f"note: {escape(note)}", highlight=False)
    if verify:
        spec = model or found.require_model_spec()
        checked = verify_export(result, found.prompt, found.task, resolve_model(spec),
                                cache=resolve_cache(found.cache or True))
        out.print(f"verify: {escape(checked.describe())}", highlight=False, soft_wrap=True)
        if not checked.equivalent:
            raise typer.Exit(1)
