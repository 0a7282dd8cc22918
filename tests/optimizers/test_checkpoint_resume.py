"""Resume points: a run continued from the checkpoint of any step ends exactly as the run that never stopped.

A deterministic fake model (replies and scores are functions of the request) makes every difference visible:
a resumed run that drew one random number more or less, or gave a candidate another id, would send different
requests and end differently. The end-to-end test with SIGKILL on the embedded model is tests/e2e.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from prompthone.errors import StoreError
from prompthone.evaluation.budget import Budget
from prompthone.models.base import Capabilities, Completion, ContinuationScores, GenerationRequest, ScoringRequest
from prompthone.optimizers import get_method
from prompthone.run.driver import OptimizationResult, run_optimization
from prompthone.tasks.example import Example, Task

WORDS = ("carefully", "briefly", "the sentiment", "each review", "positive or negative", "the label", "one word")


class InstructionModel:
    """Meta replies are instruction-like texts drawn from a hash of the request; label scores likewise."""

    def __init__(self) -> None:
        self.id = "fake:instructions"
        self.capabilities = Capabilities(generate=True, score=True)
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.calls += 1
            h = zlib.crc32(repr(r.payload()).encode())
            text = f"Decide {WORDS[h % 7]} and answer with {WORDS[(h >> 3) % 7]} (variant {h % 97})."
            yield i, Completion(f"<START>{text}<END>", prompt_tokens=20, completion_tokens=12)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.calls += 1
            h = zlib.crc32(repr(r.payload()).encode())
            yield i, ContinuationScores(tuple(-float((h >> (3 * k)) % 5) for k in range(len(r.continuations))),
                                        prompt_tokens=15)

    def close(self) -> None:
        return None


def _task() -> Task:
    examples = tuple(Example(f"review {i}: {'great' if i % 3 else 'awful'} film number {i}",
                             "positive" if i % 3 else "negative") for i in range(30))
    return Task("fake-sentiment", examples[:12], examples[12:20], examples[20:], metric="label_accuracy",
                labels=("positive", "negative"), instruction="Classify the sentiment of the review.")


SMALL: dict[str, dict[str, Any]] = {
    "ape": {"num_subsamples": 2, "num_prompts_per_subsample": 3, "num_demos": 2, "eval_samples": 6,
            "score_with": "likelihood", "mc_rounds": 1, "mc_top_k": 2, "mc_samples_per_prompt": 1},
    "opro": {"steps": 4, "num_generated_instructions": 3, "score_examples": 6},
    "apo": {"rounds": 3, "beam_size": 2, "minibatch_size": 6, "n_gradients": 2, "errors_per_gradient": 2,
            "mc_samples_per_step": 1, "max_expansion_factor": 3, "eval_rounds": 2, "eval_prompts_per_round": 3,
            "samples_per_eval": 4},
    "gepa": {"max_metric_calls": 120, "use_merge": True, "meta_max_tokens": 300},
    "auto": {"num_instructions": 2, "demo_sizes": "2", "min_slice": 2, "max_judged": 4, "max_summary_batches": 1},
    "mipro": {"num_demo_sets": 3, "num_instruction_candidates": 3, "num_trials": 6, "minibatch_size": 4,
              "minibatch_full_eval_steps": 2, "max_summary_batches": 1},
}


def _run(method: str, *, resume: dict[str, Any] | None = None,
         checkpoints: list[tuple[int, dict[str, Any]]] | None = None) -> tuple[OptimizationResult, int]:
    model = InstructionModel()
    optimizer = get_method(method).from_options(SMALL[method])
    result = run_optimization(_task(), optimizer, task_model=model, budget=Budget(calls=150), seed=7,
                              run_root=None, progress=False, resume=resume,
                              on_checkpoint=None if checkpoints is None else lambda s, c: checkpoints.append((s, c)))
    return result, model.calls


def _outcome(result: OptimizationResult) -> dict[str, Any]:
    data = result.to_dict()
    for volatile in ("wall_time_s", "run_dir"):
        data.pop(volatile)
    return data


@pytest.mark.parametrize("method", sorted(SMALL))
def test_a_run_resumed_from_any_step_ends_as_the_uninterrupted_run(method: str) -> None:
    checkpoints: list[tuple[int, dict[str, Any]]] = []
    whole, whole_calls = _run(method, checkpoints=checkpoints)
    assert len(checkpoints) == whole.steps >= 2, "the run is too short to stop in the middle"
    assert [s for s, _ in checkpoints] == list(range(1, whole.steps + 1))
    for step, point in (checkpoints[0], checkpoints[len(checkpoints) // 2], checkpoints[-1]):
        resumed, calls = _run(method, resume=point)
        assert _outcome(resumed) == _outcome(whole), f"{method} resumed after step {step}"
        # only the calls after the checkpoint are made again (no cache here), plus the same final scoring
        spent_before = _run_spend_at(point)
        assert calls == whole_calls - spent_before


def _run_spend_at(point: dict[str, Any]) -> int:
    from prompthone.evaluation.budget import BudgetMeter
    from prompthone.run import checkpoint

    class _Ctx:  # just enough of a context to read the meter back
        def __init__(self) -> None:
            import random
            self.rng = random.Random()
            self.next_id = 0
            self.task_model = None

    meter = BudgetMeter()
    checkpoint.restore(point, _Ctx(), meter, get_method(point["method"]).from_options(SMALL[point["method"]]))  # type: ignore[arg-type]
    return meter.spend.calls


def test_a_checkpoint_of_another_format_or_method_or_damaged_is_refused() -> None:
    checkpoints: list[tuple[int, dict[str, Any]]] = []
    _run("opro", checkpoints=checkpoints)
    point = checkpoints[0][1]
    with pytest.raises(StoreError, match="format"):
        _run("opro", resume={**point, "format": "prompthone-checkpoint/99"})
    with pytest.raises(StoreError, match="method 'opro', not 'ape'"):
        _run("ape", resume=point)
    with pytest.raises(StoreError, match="damaged"):
        _run("opro", resume={**point, "data": point["data"][:40]})


class _Crash(RuntimeError):
    pass


def test_a_crashed_run_resumed_from_its_store_records_what_the_uninterrupted_run_records(tmp_path) -> None:
    import prompthone as ph
    from prompthone.store import RunStore

    def run(root: str, callbacks: Sequence[Any] = ()) -> OptimizationResult:
        return ph.optimize(_task(), method="gepa", model=InstructionModel(), options=SMALL["gepa"], seed=3,
                           budget=150, run_dir=tmp_path / root, cache=False, progress=False, callbacks=callbacks)

    def crash(record: Any) -> None:
        if record.step == 4:
            raise _Crash("the machine went down")

    whole = run("a")
    with pytest.raises(_Crash):
        run("b", callbacks=[crash])
    with RunStore.default(tmp_path / "b") as store:
        (crashed,) = store.list_runs()
        assert crashed.status == "failed" and store.last_checkpoint(crashed.id)[0] == 4  # type: ignore[index]
    resumed = ph.resume(crashed.id, run_dir=tmp_path / "b", model=InstructionModel(), progress=False)
    assert _outcome(resumed) == _outcome(whole)

    def recorded(root: str, run_id: str) -> tuple[Any, ...]:
        with RunStore.default(tmp_path / root) as store:
            cands = {i: {k: v for k, v in c.items() if k != "calls_so_far"}
                     for i, c in store.candidates(run_id).items()}
            evals = sorted((e["cand_id"], e["key"], e["hash"], e["score"]) for e in store.evaluations(run_id))
            return cands, [s["step"] for s in store.steps(run_id)], evals, store.get_run(run_id).status

    assert recorded("b", crashed.id) == recorded("a", Path(whole.run_dir or "").name)


def test_ph_resume_stays_the_function_after_its_helpers_are_imported() -> None:
    import importlib

    import prompthone as ph

    importlib.import_module("prompthone.run.resume")  # what api.resume uses
    assert callable(ph.resume) and ph.resume.__module__ == "prompthone.api"
