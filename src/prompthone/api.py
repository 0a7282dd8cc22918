"""The Python API: `optimize` and `evaluate`, what the CLI calls and what notebooks use."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import EvalResult, ScoringMode
from prompthone.evaluation.prices import Price, prices_by_role
from prompthone.models.base import Model
from prompthone.models.ray_executor import RayExecutor, RayModel, resolve_executor
from prompthone.models.registry import DEFAULT_MODEL, make_model
from prompthone.models.spec import EMBEDDED_KINDS, ModelSpec
from prompthone.optimizers import get_method
from prompthone.prompts.calibration import DEFAULT_CALIBRATION, check_calibration
from prompthone.prompts.prompt import Prompt
from prompthone.run.config import RunConfig
from prompthone.run.driver import Provenance, run_optimization
from prompthone.run.results import OptimizationResult, StepRecord
from prompthone.run.resume import check_same_model, open_run, recorded_spec
from prompthone.run.session import Session
from prompthone.store.db import RunStore
from prompthone.tasks import load_task
from prompthone.tasks.example import Task

_LOADED: dict[str, Model] = {}
#: where model calls run: "local" (this process, the default), "ray" (a Ray cluster, extra `ray`) or a RayExecutor
Executor = str | RayExecutor | None


def default_model() -> Model:
    """The embedded SmolLM2-135M-Instruct on llama.cpp (loaded once per process)."""
    return resolve_model(DEFAULT_MODEL)


def resolve_model(model: str | Model | None) -> Model:
    """A `Model` from a spec string (loaded once per process and spec), an instance, or None (the default)."""
    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str):
        return model
    if model not in _LOADED:
        _LOADED[model] = make_model(model)
    return _LOADED[model]


def executor_model(model: str | Model | None, executor: Executor) -> tuple[Model, RayModel | None]:
    """The task model for `executor`, and the RayModel this call started (to be closed by the caller) if any.

    Locally: `resolve_model`. On Ray: a RayModel built from the spec (a RayModel passed in is used as it is, and
    stays the caller's to close). Ray workers build their own backend, so a model object cannot be sent to them.
    """
    ray = resolve_executor(executor)
    if ray is None or isinstance(model, RayModel):
        return resolve_model(model), None
    spec = DEFAULT_MODEL if model is None else model
    if not isinstance(spec, str):
        raise ConfigError("the ray executor builds the model on each worker from a spec ('local', 'gguf:<path>', "
                          "'openai:<url>'): pass the model as a spec string, or as a RayModel, not as an object")
    started = RayModel(spec, ray)
    return started, started


def resolve_cache(cache: bool | str | Path | CallCache | None) -> CallCache | None:
    """True → the default cache file; a path → that file; False/None → no cache."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return CallCache()
    if isinstance(cache, CallCache):
        return cache
    return CallCache(cache)


def optimize(task: Task | str, method: str = "auto", model: str | Model | None = None, *,
             meta_model: str | Model | None = None, budget: Budget | int | None = None, seed: int = 0,
             options: dict[str, Any] | None = None, run_dir: str | Path | None = "runs",
             store: str | Path | RunStore | None = None,
             cache: bool | str | Path | CallCache | None = True, scoring: ScoringMode = "auto",
             calibration: str = DEFAULT_CALIBRATION, progress: bool = True,
             callbacks: Sequence[Callable[[StepRecord], None]] = (), final_top_k: int = 3,
             mlflow: str | None = None, mlflow_experiment: str = "prompthone",
             executor: Executor = None, prices: Mapping[str, Price] | None = None) -> OptimizationResult:
    """Search for the prompt that makes `model` do best on `task`.

    >>> import prompthone as ph                                                       # doctest: +SKIP
    >>> result = ph.optimize("examples/sentiment.jsonl", budget=400)                  # doctest: +SKIP
    >>> print(result.best_prompt.instruction, result.test_score)                     # doctest: +SKIP

    `method` defaults to `auto` (instruction × demos × calibration raced within the budget; `prompthone methods`).
    `budget` caps the search in model calls (an int) or calls and tokens (`Budget`); the final scoring of the
    seed and best prompts on dev/test is reported apart in `final_spend`. `meta_model` proposes prompts and
    defaults to `model`. `options` sets the method's knobs (see `prompthone methods`). The seed and the method's
    `final_top_k` best are re-scored on the full dev split to pick the winner (0: trust the method's own ranking).
    `calibration` ("none", "contextual", "batch"; label scoring only) divides each candidate's label prior out
    of its scores (`prompts.calibration`): the search selects on calibrated scores, and the found prompt (the seed
    too) carries its estimated prior, applied wherever it is scored again.

    The run is recorded as it goes in `store` (a SQLite path or a `postgresql://` URL; default
    `<run_dir>/prompthone.sqlite`) with a resume point after every step, and exported to `<run_dir>/<run id>/`
    when it ends; a run that was killed continues with `resume(run_id)`. `mlflow` (a tracking URI, extra
    `mlflow`) also logs the run's params, metrics per step and best prompt to MLflow.

    `prices` maps model specs to their `Price` (dollars per million input and output tokens; none is shipped):
    spend is then also given in money (`usd`, and `new_usd` for the calls sent), and `Budget(usd=...)` stops the
    run when its calls have cost that much. A run without prices shows no money.

    `executor="ray"` (or a `RayExecutor` naming the cluster and workers; extra `ray`) runs the task model's calls on
    Ray workers, each holding the model built from its spec; the call cache stays here and the result is the one the
    local executor gives for the same seed. A meta model given apart (a different spec) still runs here. The workers
    started for the run are stopped when it ends; pass a `RayModel` as `model` to keep them for several runs.
    """
    tracker = _tracker(mlflow, mlflow_experiment)  # a bad tracking URI fails before any model is loaded
    task_obj = load_task(task, seed=seed) if isinstance(task, str) else task
    optimizer = get_method(method).from_options(options or {})
    check_calibration(calibration)
    if isinstance(budget, int):
        budget = Budget(calls=budget)
    call_cache = resolve_cache(cache)
    if meta_model is None:
        meta_model = default_meta_model(model)
    with run_models(model, meta_model, executor) as (task_model, meta):
        on_ray = task_model if isinstance(task_model, RayModel) else None  # recorded as spec + executor
        provenance = Provenance(model=_recordable(on_ray.spec if on_ray is not None
                                                  else DEFAULT_MODEL if model is None else model),
                                meta_model=_recordable(meta_model), cache=str(getattr(call_cache, "path", "")) or None,
                                executor=on_ray.executor.record() if on_ray is not None else None)
        task_spec = model if isinstance(model, str) else DEFAULT_MODEL if model is None else None
        meta_spec = meta_model if isinstance(meta_model, str) else task_spec if meta_model is None else None
        priced = prices_by_role(prices, (task_spec, task_model.id), (meta_spec, meta.id))
        return _tracked(tracker, lambda extra, on_start: run_optimization(
            task_obj, optimizer, task_model=task_model, meta_model=meta, budget=budget, cache=call_cache, seed=seed,
            run_root=run_dir, store=store, scoring=scoring, calibration=calibration, progress=progress,
            callbacks=[*callbacks, *extra], prices=priced,
            final_top_k=final_top_k, provenance=provenance, on_start=on_start))


def default_meta_model(model: str | Model | None) -> str | None:
    """The meta model of a run that names none: the strongest embedded instruct model installed when the task
    model is an embedded spec (`local`, `qwen-0.5b`, `qwen-1.5b`, or None), else None (the task model itself).

    Why: the meta model writes the instructions every proposing method searches over, and SmolLM2-135M cannot
    (it answers "The suggested improvement is: ..."); Qwen2.5-Coder-1.5B-Instruct writes real ones. A model
    given as an object, a file or a server is the user's choice and proposes for itself.
    """
    spec = DEFAULT_MODEL if model is None else model
    kind = ModelSpec.parse(spec).kind if isinstance(spec, str) else None
    if kind not in EMBEDDED_KINDS:
        return None
    from prompthone.models.embedded import strongest_installed_embedded

    strongest = strongest_installed_embedded()
    return None if strongest == kind else strongest


@contextmanager
def run_models(model: str | Model | None, meta_model: str | Model | None,
               executor: Executor) -> Iterator[tuple[Model, Model]]:
    """The task model (on `executor`) and the meta model of a run; Ray workers started here stop after it.

    The meta model is the task model itself when none is named or it is named by the same spec (the one place
    that decides it); a meta model named apart runs in this process.
    """
    task_model, started = executor_model(model, executor)
    try:
        yield task_model, (resolve_model(meta_model) if meta_model is not None and meta_model != model
                           else task_model)
    finally:
        if started is not None:
            started.close()


def _recordable(spec: str | Model | None) -> str | None:
    """A model spec as a run may store it for `resume`: None for an object, or for a URL holding credentials
    (never written down; a resume then asks for the model again)."""
    if not isinstance(spec, str):
        return None
    return spec if ModelSpec.parse(spec).recordable is not None else None


def _tracker(uri: str | None, experiment: str) -> Any:
    if uri is None:
        return None
    from prompthone.tracking import MlflowTracker

    return MlflowTracker(uri, experiment)


def _tracked(tracker: Any, run: Callable[[list[Callable[[StepRecord], None]], Any], OptimizationResult],
             ) -> OptimizationResult:
    """Run `run(extra_callbacks, on_start)`, logging to `tracker` when there is one (it ends FAILED on errors)."""
    if tracker is None:
        return run([], None)
    with tracker:
        result = run([tracker.on_step], tracker.start)
        tracker.finish(result, result.stopped_reason)
    return result


def resume(run_id: str, *, store: str | Path | RunStore | None = None, run_dir: str | Path = "runs",
           model: str | Model | None = None, meta_model: str | Model | None = None,
           cache: bool | str | Path | CallCache | None = None, progress: bool = True,
           callbacks: Sequence[Callable[[StepRecord], None]] = (), mlflow: str | None = None,
           mlflow_experiment: str = "prompthone", executor: Executor = None) -> OptimizationResult:
    """Continue run `run_id` of `store` (default `<run_dir>/prompthone.sqlite`) from its last finished step.

    Everything comes from the store: the task (its examples, splits and fields), the method and its options,
    the seed, the budget, the scoring mode, the model specs and the call cache file. With the same models and
    cache the result is the one the run would have had without the stop, and every call the stopped process
    had finished is answered by the cache. A model passed as an object (not a spec) must be passed again.
    `executor` defaults to the run's own ("local", or the Ray cluster and workers it was started with); pass
    "local" or another executor to continue it elsewhere (the model, and so the result, is the same).
    """
    tracker = _tracker(mlflow, mlflow_experiment)
    stored = open_run(run_id, store=store, run_dir=run_dir)
    try:
        config = stored.config
        if executor is None and config.executor is not None:
            executor = RayExecutor.from_record(config.executor)
        spec = model if model is not None else recorded_spec(stored, "model")
        meta_spec = (meta_model if meta_model is not None
                     else None if config.meta_is_task_model else recorded_spec(stored, "meta_model"))
        with run_models(spec, meta_spec, executor) as (task_model, meta):
            check_same_model(stored, "task model", task_model)
            check_same_model(stored, "meta model", meta)
            optimizer = get_method(config.method).from_options(config.options)
            call_cache = resolve_cache(cache if cache is not None else config.cache or False)
            return _tracked(tracker, lambda extra, on_start: run_optimization(
                stored.task, optimizer, task_model=task_model, meta_model=meta, budget=config.budget,
                cache=call_cache, seed=config.seed, scoring=_scoring(config), final_top_k=config.final_top_k,
                progress=progress, callbacks=[*callbacks, *extra], continuation=stored.continuation,
                prices=config.prices, on_start=on_start))
    finally:
        stored.close()


def _scoring(config: RunConfig) -> ScoringMode:
    mode = config.scoring
    if mode not in ("auto", "labels", "generate"):
        raise ConfigError(f"the stored run asks for scoring {mode!r}, which this version does not know")
    return mode  # type: ignore[return-value]


def evaluate(task: Task | str, prompt: Prompt | str | None = None, model: str | Model | None = None, *,
             split: str = "test", cache: bool | str | Path | CallCache | None = True,
             scoring: ScoringMode = "auto", calibration: str = "none", seed: int = 0, progress: bool = False,
             executor: Executor = None) -> EvalResult:
    """Score one prompt (default: the task's seed prompt) on a split of `task` (on Ray workers with `executor`).

    A prompt that carries a calibration (a found prompt, from `result.json`) is scored with it. `calibration`
    estimates one for a prompt that has none, from the train split's inputs or content-free inputs, never from
    the split scored.
    """
    task_obj = load_task(task, seed=seed) if isinstance(task, str) else task
    if prompt is None:
        prompt = Prompt(task_obj.instruction, output_format=task_obj.output_format)
    elif isinstance(prompt, str):
        prompt = Prompt(prompt, output_format=task_obj.output_format)
    examples = task_obj.split(split)
    with run_models(model, None, executor) as (backend, _):
        session = Session(cache=resolve_cache(cache), progress=f"eval {task_obj.name} [{split}]" if progress else None,
                          total=len(examples))
        with session:
            evaluator = session.evaluator(task_obj, backend, mode=scoring)
            if prompt.calibration is None:
                prompt = evaluator.calibrate(prompt, calibration)
            return evaluator.evaluate(prompt, examples)
