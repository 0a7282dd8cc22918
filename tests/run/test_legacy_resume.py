"""Runs stored by prompthone before the run package (tests/fixtures/legacy_store.sqlite, written at f415a09 by
tests/fixtures/make_legacy_store.py) still resume, and end as today's uninterrupted run of the same settings ends.

That equality holds only while a method proposes as it did when the fixture was written. Where a method's
proposals changed since (`CHANGED`: the fidelity pass gave APE the reference's induction template and GEPA a richer
feedback text), a resumed run ends on the candidates its first steps made under the old text, and today's run on
others; for those the test checks what a legacy store must keep: the run resumes after its last recorded step,
keeps every candidate it had, and finishes with its steps numbered on."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.optimizers.test_checkpoint_resume import SMALL, InstructionModel, _outcome, _task

import prompthone as ph
from prompthone.evaluation.budget import Budget
from prompthone.optimizers import get_method
from prompthone.run.config import RunConfig
from prompthone.run.driver import run_optimization
from prompthone.store.db import RunStore

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_store.sqlite"
METHODS = ("ape", "mipro", "gepa")
#: methods whose proposals changed after the fixture was written, and what changed
CHANGED = {"ape": "the reference's induction template (2026-12-07)",
           "gepa": "the default feedback text (2026-12-07)"}
#: defaults that changed after the fixture was written: its runs keep the values they were started with
OLD_DEFAULTS: dict[str, dict[str, Any]] = {"mipro": {"meta_max_tokens": 150}}
#: knobs added after the fixture was written (absent from its runs' options; they resume with the default)
NEW_KNOBS: dict[str, tuple[str, ...]] = {"gepa": ("evolve_answer_prefix",)}


def _legacy_run(store: RunStore, method: str) -> Any:
    (run,) = [r for r in store.list_runs() if r.method == method]
    return run


@pytest.mark.parametrize("method", METHODS)
def test_a_run_stored_by_the_previous_version_resumes_to_todays_uninterrupted_result(method: str,
                                                                                      tmp_path: Path) -> None:
    path = tmp_path / "legacy.sqlite"
    shutil.copyfile(FIXTURE, path)
    with RunStore(path) as store:
        run = _legacy_run(store, method)
        assert run.status == "failed" and [s["step"] for s in store.steps(run.id)] == [1, 2]
        config = RunConfig.from_dict(run.config)
        knobs = {k: v for k, v in get_method(method).knobs().items() if k not in NEW_KNOBS.get(method, ())}
        assert (config.method, config.seed, config.budget, config.options) == (
            method, 7, Budget(calls=150), {**knobs, **OLD_DEFAULTS.get(method, {}), **SMALL[method]})
        before = {i: c["prompt"] for i, c in store.candidates(run.id).items()}
    resumed = ph.resume(run.id, store=path, run_dir=tmp_path, model=InstructionModel(), cache=False, progress=False)
    with RunStore(path) as store:
        assert store.get_run(run.id).status == "finished"
        assert [s["step"] for s in store.steps(run.id)] == list(range(1, resumed.steps + 1))
        after = {i: c["prompt"] for i, c in store.candidates(run.id).items()}
    assert resumed.steps >= 2 and {i: after.get(i) for i in before} == before  # nothing recorded was lost or remade
    if method in CHANGED:
        return
    whole = run_optimization(_task(), get_method(method).from_options(config.options), task_model=InstructionModel(),
                             budget=Budget(calls=150), seed=7, run_root=None, progress=False)
    assert _outcome(resumed) == _outcome(whole)
    assert resumed.steps == whole.steps
