"""The PAS data pipeline on real parts: MiniLM + faiss dedup, the embedded SmolLM2 as generator, judge and critic.

The corpus is tiny and planted: one near-duplicate that dedup must remove, and one answer-instead-of-complement
pair that the critic must reject and whose regenerated pair must be kept.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from prompthone.augment import stages
from prompthone.augment.critic import CriticConfig
from prompthone.augment.pipeline import STAGES, Pipeline, PipelineConfig
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.metered import MeteredModel

pytestmark = [pytest.mark.e2e, pytest.mark.pas]
pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

CORPUS = [
    "What is the capital city of France?",
    "What's the capital city of France?",  # the planted near-duplicate of the line above
    "Write a Python function that returns the largest number in a list.",
    "Translate into Spanish: I would like a cup of coffee, please.",
    "A train travels 60 km in 1.5 hours. What is its average speed?",
    "Write a short, friendly message inviting my neighbours to a barbecue on Saturday.",
    "Is this review positive or negative? The food was cold and the waiter ignored us.",
    "Summarize the main causes of the First World War in a few sentences.",
]


@pytest.fixture(scope="module")
def embedder() -> Any:
    from prompthone.augment.embeddings import Embedder

    return Embedder()


def _metered(model: Any) -> MeteredModel:
    return MeteredModel(model, meter=BudgetMeter(None))


def _context(tmp_path: Path, model: Any, embedder: Any, **config: Any) -> stages.StageContext:
    context = stages.StageContext(tmp_path, PipelineConfig(**config), _metered(model), _metered(model),
                                  random.Random(0))
    context.__dict__["embedder"] = embedder  # share one loaded MiniLM across the tests (cached_property slot)
    return context


def test_dedup_removes_the_planted_near_duplicate(tmp_path: Path, embedded_model: Any, embedder: Any) -> None:
    context = _context(tmp_path, embedded_model, embedder)
    records = [{"id": str(i), "prompt": p} for i, p in enumerate(CORPUS)]
    outputs, counts = stages.RUNNERS["dedup"](context, records)
    assert [r["id"] for r in outputs["dedup_removed.jsonl"]] == ["1"]
    assert outputs["dedup_removed.jsonl"][0]["duplicate_of"] == "0"
    assert counts["near_duplicates"] == 1 and len(outputs["dedup.jsonl"]) == len(CORPUS) - 1


def test_embedding_classifier_puts_clear_prompts_in_their_category(tmp_path: Path, embedded_model: Any,
                                                                   embedder: Any) -> None:
    context = _context(tmp_path, embedded_model, embedder, heldout=0)
    records = [{"id": str(i), "prompt": p} for i, p in enumerate(CORPUS[2:5])]
    outputs, _ = stages.RUNNERS["categorize"](context, records)
    assert [r["category"] for r in outputs["categorized.jsonl"]] == ["coding", "translation", "math"]


def test_critic_rejects_a_planted_answer_and_keeps_its_regeneration(tmp_path: Path, embedded_model: Any,
                                                                   embedder: Any) -> None:
    # 135M regenerations pass the rules about one time in three on this prompt (measured: rounds 1-6 gave two
    # passes); eight sampled rounds make a run with no passing regeneration very unlikely on any build.
    context = _context(tmp_path, embedded_model, embedder, rounds=8, critic=CriticConfig(llm_checks=False))
    planted = {"id": "p1", "prompt": "A box holds 12 eggs. How many eggs are in 7 boxes?", "category": "math",
               "design": "pas", "output": "The answer is 84 eggs.", "meta": {"target": "84"}}
    outputs, counts = stages.RUNNERS["critique"](context, [planted])
    assert counts["pas"]["first_round_failures"].get("answers_instead") == 1
    assert len(outputs["pairs.jsonl"]) == 1, outputs["rejected.jsonl"]
    kept = outputs["pairs.jsonl"][0]
    assert kept["meta"]["rounds"] >= 1 and kept["output"] != planted["output"]
    assert "84" not in kept["output"] and "answer is" not in kept["output"].lower()


def test_pipeline_runs_every_stage_then_resumes_without_model_calls(tmp_path: Path, embedded_model: Any) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in CORPUS), encoding="utf-8")
    config = PipelineConfig(corpus=str(corpus), clusters=3, per_cluster=3, heldout=1, rounds=1, min_quality=1.0)
    out = tmp_path / "data"
    first = _metered(embedded_model)
    reports = Pipeline(out, config, generator=first).run()
    assert [r.name for r in reports] == list(STAGES) and not any(r.reused for r in reports)
    by_name = {r.name: r for r in reports}
    assert by_name["dedup"].counts["near_duplicates"] == 1
    for before, after in itertools.pairwise(reports):
        if after.name != "generate":
            assert after.items_in == before.items_out
    assert by_name["categorize"].counts["heldout"] == 1
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    rejected = (out / "rejected.jsonl").read_text().splitlines()
    assert len(pairs) + len(rejected) == by_name["generate"].items_out
    assert all(p["design"] == "pas" and p["category"] for p in pairs)
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["stages"]) == list(STAGES)

    again = _metered(embedded_model)
    resumed = Pipeline(out, config, generator=again).run()
    assert all(r.reused for r in resumed) and again.meter.spend.calls == 0

    # a changed critic redoes the critique alone; without its LLM checks the rerun costs no model call (a rerun
    # that changed only the rounds paid a second critique with LLM checks; the first, with its regeneration
    # round, takes 88 s at 2 threads)
    changed = PipelineConfig(**{**config.__dict__, "rounds": 0, "critic": CriticConfig(llm_checks=False)})
    third = _metered(embedded_model)
    rerun = Pipeline(out, changed, generator=third).run()
    assert [r.name for r in rerun if not r.reused] == ["critique"] and third.meter.spend.calls == 0
