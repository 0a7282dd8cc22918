"""`prompthone pas build-data`: PAS's data pipeline as resumable stages, each with its own output file and counts.

corpus → dedup (MiniLM + HNSW) → sample (k-means clusters, per-cluster sampling) → quality (rules + LLM judge,
threshold) → categorize (fixed set; held-out prompts set aside for evaluation) → generate (few-shot from golden
pairs, per design) → critique (failure modes, regenerate up to N rounds) → `pairs.<design>.jsonl`.

Each stage records in `manifest.json` a key (a hash of its settings and the previous stage's key), its counts and
its time. A re-run skips every stage whose key and files are unchanged, and a changed setting re-runs that stage
and everything after it. Model calls go through the call cache, so a stage that crashed half-way re-runs from
cache up to where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompthone.augment import stages
from prompthone.augment.critic import CriticConfig
from prompthone.augment.pairs import read_jsonl, write_jsonl
from prompthone.errors import ConfigError
from prompthone.evaluation.metered import MeteredModel

log = logging.getLogger(__name__)

STAGES = ("corpus", "dedup", "sample", "quality", "categorize", "generate", "critique")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PipelineConfig:
    """Every setting of the pipeline (its values enter the stage keys, so changing one re-runs what it affects)."""

    corpus: str | None = None  # a JSONL file of prompts; None → the BIG-bench default corpus
    corpus_field: str = "prompt"
    per_task: int = 8  # BIG-bench default corpus: prompts drawn from each task
    dedup_threshold: float = 0.92
    clusters: int = 64
    per_cluster: int = 8
    min_quality: float | None = None  # None → calibrated: the judge's rating of our golden prompts (quantile below)
    quality_quantile: float = 0.25
    classifier: str = "embedding"
    heldout: int = 40
    designs: tuple[str, ...] = ("pas",)
    rounds: int = 3
    golden: dict[str, str] = field(default_factory=dict)  # design → a user golden file replacing ours
    critic: CriticConfig = field(default_factory=CriticConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.classifier not in ("embedding", "llm"):
            raise ConfigError(f"classifier must be 'embedding' or 'llm', got {self.classifier!r}")
        if self.rounds < 0 or self.heldout < 0 or self.per_task < 1 or self.clusters < 1:
            raise ConfigError("rounds and heldout must be ≥ 0; per_task and clusters ≥ 1")
        from prompthone.augment.designs import design_name, get_design

        for design in self.designs:
            get_design(design)
        # Old names ('bpo') become current ones here, so the stage keys and files only ever see 'rewrite'.
        object.__setattr__(self, "designs", tuple(design_name(d) for d in self.designs))
        object.__setattr__(self, "golden", {design_name(d): f for d, f in self.golden.items()})


@dataclass
class StageReport:
    """What one stage did: items in and out, counts by outcome or reason, seconds, and whether it was reused."""

    name: str
    key: str
    items_in: int
    items_out: int
    counts: dict[str, Any]
    seconds: float
    reused: bool = False
    outputs: list[str] = field(default_factory=list)


def _key(previous: str, settings: Any) -> str:
    blob = json.dumps({"previous": previous, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Pipeline:
    """Runs the stages in `out_dir` with a generator model and a judge model (the same one by default)."""

    def __init__(self, out_dir: Path, config: PipelineConfig, *, generator: MeteredModel,
                 judge: MeteredModel | None = None, on_stage: Callable[[StageReport], None] | None = None,
                 on_phase: Callable[[str], None] | None = None) -> None:
        self.out = out_dir
        self.config = config
        self.context = stages.StageContext(out_dir, config, generator, judge or generator, random.Random(config.seed))
        self.on_stage = on_stage
        self.on_phase = on_phase
        self.out.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = self._read_manifest()

    def _read_manifest(self) -> dict[str, Any]:
        try:
            data = json.loads((self.out / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"stages": {}}
        return data if isinstance(data.get("stages"), dict) else {"stages": {}}

    def _write_manifest(self) -> None:
        self.manifest["config"] = asdict(self.config)
        tmp = self.out / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.out / MANIFEST)

    def run(self) -> list[StageReport]:
        """Run (or reuse) every stage in order; returns one report per stage."""
        reports: list[StageReport] = []
        key = ""
        items: list[dict[str, Any]] = []
        for name in STAGES:
            key = _key(key, stages.settings(name, self.config))
            report, items = self._stage(name, key, items)
            reports.append(report)
            if self.on_stage is not None:
                self.on_stage(report)
        return reports

    def _stage(self, name: str, key: str, items: list[dict[str, Any]]) -> tuple[StageReport, list[dict[str, Any]]]:
        saved = self.manifest["stages"].get(name)
        main = self.out / stages.MAIN_OUTPUT[name]
        if saved and saved.get("key") == key and all((self.out / f).is_file() for f in saved.get("outputs", [])):
            report = StageReport(**{**saved, "reused": True})
            return report, [r for _, r in read_jsonl(main)] if main.is_file() else []
        if self.on_phase is not None:
            self.on_phase(name)
        started = time.monotonic()
        outputs, counts = stages.RUNNERS[name](self.context, items)
        written = [fname for fname, records in outputs.items() if write_jsonl(self.out / fname, records) >= 0]
        kept = outputs.get(stages.MAIN_OUTPUT[name], [])
        report = StageReport(name, key, len(items), len(kept), counts, round(time.monotonic() - started, 2),
                             outputs=written)
        self.manifest["stages"][name] = asdict(report) | {"reused": False}
        for later in STAGES[STAGES.index(name) + 1:]:
            self.manifest["stages"].pop(later, None)
        self._write_manifest()
        return report, list(kept)

