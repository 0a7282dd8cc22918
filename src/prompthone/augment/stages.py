"""The stage runners of PAS's data pipeline: each takes the previous stage's records, returns its files and counts.

A runner returns `({file name: records}, counts)`; the first file listed in `MAIN_OUTPUT` feeds the next stage.
Kept apart from `pipeline` (which orders, resumes and records stages) so each stage reads as the paper's step.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompthone.augment import embeddings
from prompthone.augment.categories import (
    CATEGORIES,
    category_centroids,
    classify_by_embedding,
    classify_by_llm,
)
from prompthone.augment.corpus import bigbench_corpus, read_corpus
from prompthone.augment.critic import Critic, critique_and_regenerate
from prompthone.augment.designs import get_design
from prompthone.augment.generate import generate_outputs
from prompthone.augment.golden import load_golden
from prompthone.augment.pairs import Pair
from prompthone.augment.quality import rate, rule_rejection
from prompthone.evaluation.metered import MeteredModel

if TYPE_CHECKING:
    from prompthone.augment.pipeline import PipelineConfig

Records = list[dict[str, Any]]
Outputs = tuple[dict[str, Records], dict[str, Any]]


@dataclass
class StageContext:
    """What every stage may use: the output directory, settings, models and a seeded random source."""

    out: Path
    config: PipelineConfig
    generator: MeteredModel
    judge: MeteredModel
    rng: random.Random

    @cached_property
    def embedder(self) -> embeddings.Embedder:
        return embeddings.Embedder()

    def golden(self, design: str) -> dict[str, list[Pair]]:
        user_file = self.config.golden.get(design)
        return load_golden(design, Path(user_file) if user_file else None)


MAIN_OUTPUT = {"corpus": "corpus.jsonl", "dedup": "dedup.jsonl", "sample": "sample.jsonl",
               "quality": "quality.jsonl", "categorize": "categorized.jsonl", "generate": "generated.jsonl",
               "critique": "pairs.jsonl"}


def settings(stage: str, config: PipelineConfig) -> Any:
    """The settings a stage's output depends on (they enter its resume key)."""
    by_stage: dict[str, Any] = {
        "corpus": [config.corpus, config.corpus_field, config.per_task, config.seed],
        "dedup": [config.dedup_threshold, embeddings.EMBEDDING_MODEL],
        "sample": [config.clusters, config.per_cluster, config.seed],
        "quality": [config.min_quality, config.quality_quantile, config.golden],
        "categorize": [config.classifier, config.heldout, config.seed],
        "generate": [list(config.designs), config.golden],
        "critique": [list(config.designs), config.rounds, asdict(config.critic)],
    }
    return by_stage[stage]


def _corpus(ctx: StageContext, _: Records) -> Outputs:
    config = ctx.config
    prompts = (read_corpus(Path(config.corpus), config.corpus_field) if config.corpus
               else bigbench_corpus(config.per_task, config.seed))
    sources = Counter(p.source for p in prompts)
    return {"corpus.jsonl": [p.to_dict() for p in prompts]}, {"prompts": len(prompts), "sources": len(sources)}


def _dedup(ctx: StageContext, items: Records) -> Outputs:
    vectors = ctx.embedder.encode([r["prompt"] for r in items])
    dropped = embeddings.near_duplicates(vectors, ctx.config.dedup_threshold)
    gone = {d.index for d in dropped}
    removed = [{"id": items[d.index]["id"], "prompt": items[d.index]["prompt"], "duplicate_of": items[d.of]["id"],
                "similarity": d.similarity} for d in dropped]
    kept = [r for i, r in enumerate(items) if i not in gone]
    return ({"dedup.jsonl": kept, "dedup_removed.jsonl": removed},
            {"kept": len(kept), "near_duplicates": len(removed), "threshold": ctx.config.dedup_threshold})


def _sample(ctx: StageContext, items: Records) -> Outputs:
    config = ctx.config
    vectors = ctx.embedder.encode([r["prompt"] for r in items])
    clusters = embeddings.cluster(vectors, config.clusters, seed=config.seed)
    chosen = embeddings.sample_per_cluster(clusters, config.per_cluster, random.Random(config.seed))
    kept = [items[i] | {"cluster": clusters[i]} for i in chosen]
    return {"sample.jsonl": kept}, {"clusters": len(set(clusters)), "sampled": len(kept),
                                    "per_cluster": config.per_cluster}


def _quality_threshold(ctx: StageContext) -> float:
    """The configured minimum rating, else the judge's own rating of our golden prompts at `quality_quantile`.

    A judge's scale is its own (SmolLM2-135M rates almost everything below 2 of 5), so an absolute threshold
    tuned for one judge keeps nothing or everything under another; prompts we know are good fix the scale.
    """
    if ctx.config.min_quality is not None:
        return ctx.config.min_quality
    golden = sorted(q for q in rate(ctx.judge, [p.prompt for ps in ctx.golden(ctx.config.designs[0]).values()
                                                for p in ps]) if q is not None)
    if not golden:
        return 0.0
    return round(golden[min(len(golden) - 1, int(ctx.config.quality_quantile * len(golden)))], 4)


def _quality(ctx: StageContext, items: Records) -> Outputs:
    ruled = [(r, rule_rejection(r["prompt"])) for r in items]
    survivors = [r for r, reason in ruled if reason is None]
    ratings = rate(ctx.judge, [r["prompt"] for r in survivors])
    threshold = _quality_threshold(ctx)
    kept, rejected = [], [r | {"reasons": [reason]} for r, reason in ruled if reason is not None]
    for record, rating in zip(survivors, ratings, strict=True):
        if rating is not None and rating >= threshold:
            kept.append(record | {"quality": rating})
        else:
            rejected.append(record | {"quality": rating, "reasons": ["low_quality" if rating else "unrated"]})
    valid = [q for q in ratings if q is not None]
    counts = {"kept": len(kept), "rejected": len(rejected), "min_quality": threshold,
              "mean_rating": round(sum(valid) / len(valid), 3) if valid else None,
              "reasons": dict(Counter(r for rec in rejected for r in rec["reasons"]))}
    return {"quality.jsonl": kept, "quality_rejected.jsonl": rejected}, counts


def _categorize(ctx: StageContext, items: Records) -> Outputs:
    prompts = [r["prompt"] for r in items]
    if ctx.config.classifier == "llm":
        labelled = classify_by_llm(ctx.judge, prompts)
    else:
        golden = ctx.golden(ctx.config.designs[0])
        names, centroids = category_centroids(ctx.embedder, {c: [p.prompt for p in ps] for c, ps in golden.items()})
        labelled = classify_by_embedding(ctx.embedder.encode(prompts), names, centroids)
    records = [r | {"category": c, "category_score": s} for r, (c, s) in zip(items, labelled, strict=True)]
    order = list(range(len(records)))
    random.Random(ctx.config.seed).shuffle(order)
    heldout_ids = set(order[:min(ctx.config.heldout, len(records) // 2)])
    kept = [r for i, r in enumerate(records) if i not in heldout_ids]
    heldout = [r for i, r in enumerate(records) if i in heldout_ids]
    by_category = Counter(r["category"] for r in records)
    return ({"categorized.jsonl": kept, "heldout.jsonl": heldout},
            {"categorized": len(records), "training_prompts": len(kept), "heldout": len(heldout),
             "by_category": {c: by_category.get(c, 0) for c in CATEGORIES}})


def _generate(ctx: StageContext, items: Records) -> Outputs:
    records: Records = []
    for design_name in ctx.config.designs:
        design = get_design(design_name)
        outputs = generate_outputs(ctx.generator, design, [(r["id"], r["prompt"], r["category"]) for r in items],
                                   ctx.golden(design_name))
        records += [r | {"design": design_name, "output": o} for r, o in zip(items, outputs, strict=True)]
    return {"generated.jsonl": records}, {"generated": len(records), "designs": list(ctx.config.designs)}


def _critique(ctx: StageContext, items: Records) -> Outputs:
    pairs: Records = []
    rejected: Records = []
    counts: dict[str, Any] = {}
    for design_name in ctx.config.designs:
        group = [r for r in items if r["design"] == design_name]
        accepted, failed, design_counts = _critique_design(ctx, design_name, group)
        pairs += accepted
        rejected += failed
        counts[design_name] = design_counts
    return {"pairs.jsonl": pairs, "rejected.jsonl": rejected}, counts


def _critique_design(ctx: StageContext, design_name: str, group: Records) -> tuple[Records, Records, dict[str, Any]]:
    design, golden = get_design(design_name), ctx.golden(design_name)
    if not group:
        return [], [], {"pairs": 0, "rejected": 0, "yield": 0.0}
    critic = Critic(design, ctx.embedder, judge=ctx.judge, golden=golden, config=ctx.config.critic)

    def check(indices: Any, outputs: Any) -> Any:
        return critic.critique([(group[i]["prompt"], o, group[i].get("meta", {}).get("target", ""))
                                for i, o in zip(indices, outputs, strict=True)])

    def regenerate(indices: Any, round_: int) -> list[str]:
        return generate_outputs(ctx.generator, design, [(group[i]["id"], group[i]["prompt"], group[i]["category"])
                                                        for i in indices], golden, round_=round_)

    refined = critique_and_regenerate([r["id"] for r in group], [r["output"] for r in group], check, regenerate,
                                      ctx.config.rounds)
    accepted, failed = [], []
    first_round = Counter(reason for r in refined for reason in r.history[0]["reasons"])
    for record, result in zip(group, refined, strict=True):
        pair = Pair(record["prompt"], result.output, record["category"], design_name,
                    {"id": record["id"], "source": record.get("source", ""), "rounds": result.rounds,
                     "quality": record.get("quality")})
        if result.critique.ok:
            accepted.append(asdict(pair))
        else:
            failed.append(asdict(pair) | {"reasons": list(result.critique.reasons),
                                          "evidence": result.critique.evidence, "history": result.history})
    counts = {"pairs": len(accepted), "rejected": len(failed),
              "yield": round(len(accepted) / len(group), 3) if group else 0.0,
              "accepted_by_round": dict(sorted(Counter(r.rounds for r in refined if r.critique.ok).items())),
              "first_round_failures": dict(first_round.most_common()),
              "final_rejection_reasons": dict(Counter(x for r in failed for x in r["reasons"]).most_common()),
              "llm_thresholds": {k: round(v, 3) for k, v in critic.thresholds.items()}}
    return accepted, failed, counts


RUNNERS: dict[str, Callable[[StageContext, Records], Outputs]] = {
    "corpus": _corpus, "dedup": _dedup, "sample": _sample, "quality": _quality, "categorize": _categorize,
    "generate": _generate, "critique": _critique,
}
