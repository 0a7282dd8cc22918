"""Judged win rate of augmented answers vs plain answers (PAS, Zheng et al., 2024, §4), and systems head to head.

Every prompt is answered by the target model as written (greedy, the same request every system's answer uses,
so only the prompt differs) and through each system (a PAS complement, a BPO-style rewrite, ...). A pairwise judge
compares each system's answer with the plain one, and each pair of systems with each other, in both orders
(`judge`). The report keeps every answer and verdict, so a reader can check the evidence behind each number.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompthone.augment.augmenter import AugmentedAnswer, Augmenter, answer_requests
from prompthone.augment.judge import JudgeItem, JudgeMode, PairwiseJudge, Verdict, WinRate, win_rate
from prompthone.errors import ConfigError, InputError
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Model
from prompthone.run.session import Session

logger = logging.getLogger(__name__)

#: The name of the no-augmentation answers in comparisons and tables.
BASELINE = "none"
_EXAMPLES_IN_MARKDOWN = 3
_MARKDOWN_CHARS = 600


@dataclass(frozen=True)
class Comparison:
    """`first` vs `second` (system names, or 'none'), judged on every prompt: its verdicts and their summary."""

    first: str
    second: str
    verdicts: tuple[Verdict, ...]
    summary: WinRate

    @property
    def name(self) -> str:
        return f"{self.first} vs {self.second}"


@dataclass
class AugmentationReport:
    """Everything an augmentation evaluation produced: answers per system, comparisons, spend and timing."""

    prompts: tuple[str, ...]
    baseline_answers: tuple[str, ...]
    system_answers: dict[str, tuple[AugmentedAnswer, ...]]
    comparisons: tuple[Comparison, ...]
    target_id: str
    judge_id: str
    judge_mode: str
    seed: int
    seconds: float = 0.0
    spend: dict[str, object] = field(default_factory=dict)
    references: tuple[str, ...] = ()

    def reference_accuracy(self) -> dict[str, float]:
        """Per system (and 'none'): the fraction of answers that contain the prompt's reference answer.

        A judge-free check, available when the prompts carry references (the BIG-bench held-out set does): it
        says whether augmentation changed correctness, where a weak judge's verdicts may say nothing.
        """
        if not self.references:
            return {}
        texts = {BASELINE: self.baseline_answers,
                 **{k: tuple(a.answer for a in v) for k, v in self.system_answers.items()}}
        return {name: round(sum(contains_reference(t, r) for t, r in zip(answers, self.references, strict=True))
                            / len(self.references), 4) for name, answers in texts.items()}

    def table(self) -> list[dict[str, object]]:
        """One row per comparison (what the CLI prints): outcomes, win rate, its 95% CI and judge consistency."""
        rows: list[dict[str, object]] = []
        for c in self.comparisons:
            s = c.summary
            rows.append({"comparison": c.name, "n": s.n, "wins": s.wins, "ties": s.ties, "losses": s.losses,
                         "win_rate": round(s.win_rate, 4), "ci95": f"[{s.ci_low:.3f}, {s.ci_high:.3f}]",
                         "consistency": round(s.consistency, 4), "unreadable": s.unreadable,
                         "mean_score": None if s.mean_score is None else round(s.mean_score, 4)})
        return rows

    def records(self) -> list[dict[str, Any]]:
        """Per prompt: the plain answer, each system's output, augmented prompt and answer, and every verdict."""
        out = []
        for i, prompt in enumerate(self.prompts):
            out.append({"prompt": prompt, "baseline_answer": self.baseline_answers[i],
                        "systems": {name: {"output": a[i].output, "augmented_prompt": a[i].augmented_prompt,
                                           "answer": a[i].answer} for name, a in self.system_answers.items()},
                        "verdicts": {c.name: c.verdicts[i].to_dict() for c in self.comparisons}})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target_id, "judge": self.judge_id, "judge_mode": self.judge_mode, "seed": self.seed,
                "n": len(self.prompts), "seconds": round(self.seconds, 3), "spend": self.spend,
                "summary": {c.name: asdict(c.summary) for c in self.comparisons}, "table": self.table(),
                "reference_accuracy": self.reference_accuracy(),
                "records": self.records()}

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write `eval.json` (everything) and `eval.md` (the win-rate table and a few examples); return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out / "eval.json", out / "eval.md"
        json_path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        md_path.write_text(render_markdown(self), encoding="utf-8")
        return json_path, md_path


def contains_reference(answer: str, reference: str) -> bool:
    """True when `reference` occurs in `answer` as a whole word or phrase, ignoring case."""
    reference = reference.strip()
    return bool(reference) and re.search(rf"(?<!\w){re.escape(reference)}(?!\w)", answer, re.IGNORECASE) is not None


def _clip(text: str, limit: int = _MARKDOWN_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in _clip(text).splitlines()) or "> (empty)"


def render_markdown(report: AugmentationReport) -> str:
    """The human-readable report: setup, the win-rate table, then the first few prompts with answers and verdicts."""
    lines = ["# Augmentation evaluation", "",
             f"Target `{report.target_id}`, judge `{report.judge_id}` ({report.judge_mode} mode, both orders), "
             f"{len(report.prompts)} prompts, {report.seconds:.1f} s.", "",
             "| comparison | n | wins | ties | losses | win rate | 95% CI | consistency | mean P(first) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in report.table():
        mean = "–" if row["mean_score"] is None else f"{row['mean_score']:.3f}"
        lines.append(f"| {row['comparison']} | {row['n']} | {row['wins']} | {row['ties']} | {row['losses']} | "
                     f"{row['win_rate']:.3f} | {row['ci95']} | {row['consistency']:.2f} | {mean} |")
    lines += ["", "Win rate = (wins + ties/2) / n for the first-named side; a win needs the judge's preference in "
              "both answer orders. Consistency = fraction of prompts whose two orders agreed.", ""]
    accuracy = report.reference_accuracy()
    if accuracy:
        lines += ["Judge-free check: answers containing the reference answer — "
                  + ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items()) + ".", ""]
    for i, record in enumerate(report.records()[:_EXAMPLES_IN_MARKDOWN]):
        lines += [f"## Example {i + 1}", "", "**Prompt**", "", _quote(record["prompt"]), "",
                  f"**Answer without augmentation ({BASELINE})**", "", _quote(record["baseline_answer"]), ""]
        for name, system in record["systems"].items():
            lines += [f"**{name}: output**", "", _quote(system["output"]), "",
                      f"**{name}: answer**", "", _quote(system["answer"]), ""]
        for c in report.comparisons:
            v = c.verdicts[i]
            said = {"first": f"{c.first} preferred", "second": f"{c.second} preferred", "tie": "tie",
                    None: "unreadable reply"}
            lines.append(f"- {c.name}: **{v.outcome}** for {c.first} ({c.first} shown as A: "
                         f"{said[v.first_as_a.preference]}; as B: {said[v.first_as_b.preference]})")
        lines.append("")
    return "\n".join(lines)


def _rebind(name: str, system: Augmenter, target: MeteredModel, session: Session,
            cache: CallCache | None) -> Augmenter:
    """The system with its calls metered by the evaluation's session (its own cache if the evaluation has none).

    Its target must be the evaluation's target: else its answers and the plain answers differ by model, not prompt.
    """
    if system.target_model.id != target.id:
        raise ConfigError(f"system {name!r} answers with {system.target_model.id} but the evaluation's target is "
                          f"{target.id}: build the Augmenter with the same target model")
    return Augmenter(system.complement_model.model, target, design=system.design,
                     cache=cache if cache is not None else system.complement_model.cache, session=session,
                     answer_tokens=system.answer_tokens, temperature=system.temperature, seed=system.seed)


def _answer_tokens(systems: Mapping[str, Augmenter]) -> int:
    tokens = {s.answer_tokens for s in systems.values()}
    if len(tokens) > 1:
        logger.warning("systems answer with different max tokens %s; plain answers use the first system's",
                       sorted(tokens))
    return next(iter(systems.values())).answer_tokens


def _comparison_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Each system vs no augmentation, then each pair of systems head to head (in the order given)."""
    return [(n, BASELINE) for n in names] + list(itertools.combinations(names, 2))


def _check_inputs(prompts: Sequence[str], systems: Mapping[str, Augmenter],
                  baseline_answers: Sequence[str] | None) -> None:
    if not prompts:
        raise InputError("no prompts to evaluate")
    if not systems:
        raise ConfigError("no systems to evaluate: pass at least one Augmenter, e.g. {'pas': Augmenter(...)}")
    if BASELINE in systems:
        raise ConfigError(f"{BASELINE!r} names the no-augmentation answers; give the system another name")
    if baseline_answers is not None and len(baseline_answers) != len(prompts):
        raise InputError(f"{len(baseline_answers)} baseline answers for {len(prompts)} prompts")


def _unwrap(model: Model | MeteredModel) -> Model:
    return model.model if isinstance(model, MeteredModel) else model


def _judge_comparisons(judge: PairwiseJudge, prompts: Sequence[str], texts: Mapping[str, Sequence[str]],
                       pairs: Sequence[tuple[str, str]], seed: int) -> tuple[Comparison, ...]:
    """Judge every (first, second) pair on every prompt in one batch (both orders each), then summarize."""
    n = len(prompts)
    items = [JudgeItem(prompts[i], texts[a][i], texts[b][i]) for a, b in pairs for i in range(n)]
    verdicts = judge.judge(items)
    chunks = [tuple(verdicts[k * n:(k + 1) * n]) for k in range(len(pairs))]
    return tuple(Comparison(a, b, chunk, win_rate(chunk, seed=seed)) for (a, b), chunk in zip(pairs, chunks,
                                                                                                 strict=True))


def evaluate_augmentation(prompts: Sequence[str], *, target_model: Model | MeteredModel,
                          judge_model: Model | MeteredModel, systems: Mapping[str, Augmenter],
                          baseline_answers: Sequence[str] | None = None, cache: CallCache | None = None,
                          judge_mode: JudgeMode = "auto", seed: int = 0, progress: bool = True,
                          references: Sequence[str] | None = None) -> AugmentationReport:
    """Answer `prompts` plainly and through each system, judge every comparison in both orders, summarize.

    `baseline_answers` replaces the plain answers (e.g. from an earlier run). All calls share one BudgetMeter
    (the report's `spend`) and `cache`; `seed` drives the bootstrap CIs. Target and judge may be one model.
    `references` (one per prompt) adds the judge-free `reference_accuracy` to the report.
    """
    if references is not None and len(references) != len(prompts):
        raise InputError(f"{len(references)} references for {len(prompts)} prompts")
    _check_inputs(prompts, systems, baseline_answers)
    started = time.perf_counter()
    n, names = len(prompts), list(systems)
    pairs = _comparison_pairs(names)
    total = 2 * n * len(names) + (0 if baseline_answers is not None else n) + 2 * n * len(pairs)
    session = Session(cache=cache, progress="evaluating" if progress else None, total=total)
    with session:
        bar = session.ui
        target = session.model(_unwrap(target_model), "task")
        judge = PairwiseJudge(session.model(_unwrap(judge_model), "judge"), mode=judge_mode)
        rebound = {name: _rebind(name, s, target, session, cache) for name, s in systems.items()}
        if baseline_answers is None:
            bar.phase("plain answers")
            requests = answer_requests(prompts, max_tokens=_answer_tokens(systems))
            baseline_answers = [c.text.strip() for c in target.generate(requests)]
        answers: dict[str, tuple[AugmentedAnswer, ...]] = {}
        for name, system in rebound.items():
            bar.phase(f"answers: {name}")
            answers[name] = tuple(system.answer(prompts))
        bar.phase("judging")
        texts = {BASELINE: list(baseline_answers), **{k: [a.answer for a in v] for k, v in answers.items()}}
        comparisons = _judge_comparisons(judge, prompts, texts, pairs, seed)
    report = AugmentationReport(tuple(prompts), tuple(baseline_answers), answers, comparisons, target.id, judge.id,
                                judge.mode, seed, seconds=time.perf_counter() - started,
                                spend=session.meter.spend.to_dict(), references=tuple(references or ()))
    logger.info("augmentation evaluation: %s", "; ".join(f"{c.name} {c.summary.win_rate:.3f}" for c in comparisons))
    return report
