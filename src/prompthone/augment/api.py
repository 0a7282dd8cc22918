"""PAS's Python API: `build_data`, `augment`, and the model resolution they share with the CLI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from prompthone.api import default_meta_model, resolve_cache, resolve_model
from prompthone.augment.augmenter import AugmentedAnswer, Augmenter
from prompthone.augment.pipeline import Pipeline, PipelineConfig, StageReport
from prompthone.evaluation.cache import CallCache
from prompthone.models.base import Model
from prompthone.run.session import Session


def build_data(out_dir: str | Path, config: PipelineConfig | None = None, *, model: str | Model | None = None,
               judge_model: str | Model | None = None, cache: bool | str | Path | CallCache | None = True,
               progress: bool = True, on_stage: Callable[[StageReport], None] | None = None) -> list[StageReport]:
    """Run (or resume) the PAS data pipeline in `out_dir`; `model` generates, `judge_model` rates and critiques.

    >>> reports = build_data("pas-data", PipelineConfig(per_task=2, heldout=20))   # doctest: +SKIP
    >>> [(r.name, r.items_out) for r in reports]                                   # doctest: +SKIP
    """
    config = config or PipelineConfig()
    session = Session(cache=resolve_cache(cache), progress="pas build-data" if progress else None)
    with session:
        generator = session.model(resolve_model(model), "meta")
        judge = session.model(resolve_model(judge_model), "judge") if judge_model is not None else generator
        pipeline = Pipeline(Path(out_dir), config, generator=generator, judge=judge, on_stage=on_stage,
                            on_phase=session.ui.phase)
        return pipeline.run()


def augment(prompts: Sequence[str], *, complement_model: str | Model | None = None,
            target_model: str | Model | None = None, design: str | None = None,
            cache: bool | str | Path | CallCache | None = True) -> list[AugmentedAnswer]:
    """Complement each prompt with `complement_model` and answer it with `target_model` (default: embedded).

    The complement model writes text for the target as a meta model writes prompts for a task model, so when none
    is named it defaults as the meta model does (`api.default_meta_model`): the strongest embedded model installed
    for an embedded target, else the target itself. Each answer records the complement model that wrote it.
    `design` defaults to the adapter's own ('pas' or 'rewrite') when the complement model is an `adapter:` spec.
    """
    if complement_model is None:
        complement_model = default_meta_model(target_model) or target_model
    if design is None:
        design = "pas"
        if isinstance(complement_model, str) and complement_model.startswith("adapter:"):
            from prompthone.models.adapters import design_of

            design = design_of(complement_model.removeprefix("adapter:"))
    augmenter = Augmenter(resolve_model(complement_model), resolve_model(target_model), design=design,
                          cache=resolve_cache(cache))
    return augmenter.answer(prompts)


def evaluation_systems(model: str | Model, judge_model: str | Model | None, augmenters: dict[str, str | Model | None],
                       *, answer_tokens: int, cache: bool | str | Path | CallCache | None = True,
                       ) -> tuple[Model, Model, dict[str, Augmenter], CallCache | None]:
    """The target, the judge and one Augmenter per named augmenting model (skipping None), for `pas eval`."""
    from prompthone.errors import ConfigError

    call_cache = resolve_cache(cache)
    target = resolve_model(model)
    judge = resolve_model(judge_model) if judge_model is not None else target
    systems = {name: Augmenter(resolve_model(spec), target, design=name, cache=call_cache,
                               answer_tokens=answer_tokens)
               for name, spec in augmenters.items() if spec is not None}
    if not systems:
        raise ConfigError("nothing to evaluate: give --pas and/or --rewrite (e.g. --pas adapter:adapters/pas)")
    return target, judge, systems, call_cache
