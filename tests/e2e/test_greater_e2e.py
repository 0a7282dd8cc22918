"""GREATER end to end on SmolLM2 in torch (CPU): two steps on a tiny task, each decision recorded with its reason,
and the found prompt evaluated on the llama.cpp backend (transfer)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import prompthone as ph
from prompthone.errors import ConfigError
from prompthone.prompts.prompt import Prompt

pytestmark = [pytest.mark.e2e, pytest.mark.torch]

TINY = {"steps": 2, "n_train": 4, "reasoning_tokens": 12, "shortlist": 2, "dev_samples": 4, "topq": 2,
        "group_size": 2, "batch_size": 4}


def _tiny_task() -> Any:
    task = ph.load_task("gen:sentiment_templates", seed=1)
    return replace(task, train=task.train[:6], dev=task.dev[:4], test=task.test[:4])


def test_two_greater_steps_record_their_decisions(torch_model: Any, embedded_model: Any, tmp_path: Path) -> None:
    task = _tiny_task()
    result = ph.optimize(task, method="greater", model=torch_model, options=TINY, run_dir=tmp_path, cache=False,
                         progress=False, final_top_k=1, seed=1)
    run = Path(result.run_dir or "")
    assert result.stopped_reason == "finished" and result.steps == 2
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "estimate"  # the driver's budget estimate comes first, then GREATER's steps
    events = events[1:]
    assert [e["step"] for e in events] == [0, 1]
    assert [e["position"] for e in events] == [0, 1]  # left to right
    for event in events:
        tokens = [c["token"] for c in event["candidates"]]
        assert tokens[0] == event["current_token"]  # the current token is always a candidate
        assert len(event["shortlist"]) <= TINY["shortlist"]
        # the shortlist: the most negative gradients over every candidate, the current token included
        grads = {c["token"]: c["gradient"] for c in event["candidates"]}
        shortlisted = [s["token"] for s in event["shortlist"]]
        assert sorted(grads.values())[:len(shortlisted)] == sorted(grads[t] for t in shortlisted)
        for s in event["shortlist"]:  # measured by error rate + 0.02 · prompt NLL
            assert s["loss"] == pytest.approx(s["errors"] + 0.02 * s["nll"], abs=1e-5)
        assert event["chosen"] in shortlisted
        if event["how"] == "best":  # the lowest loss, the later one in gradient order on a tie
            best = min(s["loss"] for s in event["shortlist"])
            assert event["chosen"] == [s["token"] for s in event["shortlist"] if s["loss"] == best][-1]
        else:
            assert event["how"] == "sentence-end" and event["chosen"] == "."
        assert event["changed"] == (event["chosen"] != event["current_token"])
        assert event["reason"].startswith("replaced" if event["changed"] else "kept")
        assert event["current_loss"] is not None
        assert event["dev_sample"] is not None and event["gradient_s"] > 0
    latest = {}  # candidates.jsonl appends a record each time a candidate is scored: keep the last per id
    for line in (run / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        latest[record["id"]] = record
    found = [latest[i] for i in sorted(latest) if latest[i]["origin"].startswith("greater")]
    assert found[0]["origin"] == "greater-init"
    assert found[-1]["prompt"]["instruction"] == events[-1]["prompt"]
    prompt = Prompt.from_dict(found[-1]["prompt"])
    assert prompt.instruction_position == "after" and prompt.reasoning_tokens == TINY["reasoning_tokens"]
    hint = " or ".join(f"'{label}'" for label in task.labels)  # the reference's format hint, our labels
    assert prompt.extractor == f"Therefore, the final answer (use exact format: {hint}) is"

    # Transfer: the prompt found on torch runs unchanged on llama.cpp (reasoning, then label scoring after it).
    transferred = ph.evaluate(task, prompt, model=embedded_model, split="dev", cache=False)
    assert transferred.n == len(task.dev) and 0.0 <= transferred.score <= 1.0
    assert all("\n→ " in r.raw for r in transferred.examples)


def test_greater_refuses_a_black_box_model(embedded_model: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="white-box"):
        ph.optimize(_tiny_task(), method="greater", model=embedded_model, options=TINY, run_dir=tmp_path,
                    cache=False, progress=False)


def test_greater_resumes_from_a_checkpoint_without_its_model_inside(torch_model: Any) -> None:
    from prompthone.optimizers import get_method
    from prompthone.run.driver import run_optimization

    task = _tiny_task()
    points: list[tuple[int, dict[str, Any]]] = []

    def run(resume: dict[str, Any] | None = None) -> Any:
        return run_optimization(task, get_method("greater").from_options(TINY), task_model=torch_model, seed=1,
                                run_root=None, progress=False, final_top_k=1, resume=resume,
                                on_checkpoint=lambda step, point: points.append((step, point)))

    whole = run()
    assert [step for step, _ in points] == [1, 2]
    assert len(points[0][1]["data"]) < 200_000  # the torch model stays out of the checkpoint
    resumed = run(resume=points[0][1])  # step 2 again, from the state after step 1
    assert resumed.best_prompt == whole.best_prompt and resumed.steps == whole.steps == 2
    assert (resumed.best_dev_score, resumed.test_score) == (whole.best_dev_score, whole.test_score)
