"""What every `prompthone` command module shares: consoles, option types and the error guard.

Its own module so that command modules (`cli`, `cli_pas`) import it rather than each other: `python -m prompthone.cli`
runs cli.py as `__main__`, and a command module importing `prompthone.cli` would then load it a second time, half built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from prompthone.errors import InputError, PrompthoneError

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


def load_cli_task(task: str, seed: int, input_field: str, target_field: str, labels: str | None,
                  instruction: str | None, limit: int | None) -> Any:
    """The task named by the shared task options (`--labels` arrives as one comma-separated string)."""
    from prompthone.tasks import load_task

    label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    return load_task(task, seed=seed, input_field=input_field, target_field=target_field, labels=label_list,
                     instruction=instruction, limit=limit)


def cache_setting(no_cache: bool, cache: Path | None) -> bool | Path:
    """`--no-cache` / `--cache FILE` as the API's `cache` argument (True: the default file)."""
    return False if no_cache else (cache if cache is not None else True)


def parse_options(pairs: list[str]) -> dict[str, str]:
    """Repeated `-o KEY=VALUE` as a dict; a pair without '=' is an input error naming `--option`."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected KEY=VALUE, got {pair!r}", field="--option")
        options[key.strip()] = value.strip()
    return options
