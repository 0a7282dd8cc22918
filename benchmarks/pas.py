"""PAS end to end on the embedded model: curated data → LoRA complement model (and a rewriter) → judged win rates.

    python -m benchmarks.pas                       # ~1 h on 2 cores: data, two LoRA runs, evaluation
    python -m benchmarks.pas --quick               # tiny sizes: checks every step runs (a few minutes)
    python -m benchmarks.pas --quick --corpus prompts.jsonl   # the same on your own prompts (the smoke test's way)
    python -m benchmarks.pas --judge-model openai:http://127.0.0.1:8000/v1/qwen2.5-7b   # a stronger judge

Every step reuses what an earlier run left in `--out`: the pipeline resumes stage by stage, a finished adapter is
kept (pass --retrain to train again), and the evaluation's calls come from the call cache. The section written
to RESULTS.md holds the stage yields, the training losses (and `benchmarks/pas-loss.png`), the win rates of PAS
and of the rewriter against no augmentation and against each other, and the judge-free reference check. Every run
writes its raw results (stage yields, training logs, every answer and verdict) to `<out>/pas.json`; a full run also
commits them beside RESULTS.md (`benchmarks/results/pas.json`), and `--from-raw` rewrites the section from that file
alone. Nothing is asserted: the exit status is 1 only if a step failed.

The rewriter (design `rewrite`) is BPO-style: it replaces the prompt, as BPO does, but this pipeline builds its data
and trains it, like the PAS model; it is not Cheng et al.'s released BPO model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.results_md import add_raw_options, command_line, save_raw, stamp, write_section
from prompthone.augment.api import build_data, evaluation_systems
from prompthone.augment.critic import CriticConfig
from prompthone.augment.evaluate import AugmentationReport, evaluate_augmentation
from prompthone.augment.pairs import read_jsonl, read_pairs
from prompthone.augment.pipeline import PipelineConfig, StageReport
from prompthone.augment.train import TrainConfig, TrainResult, train_augmenter
from prompthone.models.adapters import METADATA_FILE

RAW = Path(__file__).with_name("results") / "pas.json"
DESIGNS = ("pas", "rewrite")
FULL = {"data": PipelineConfig(per_task=2, clusters=64, per_cluster=4, heldout=40, rounds=3, designs=DESIGNS),
        "train": TrainConfig(epochs=3, batch_size=8), "answer_tokens": 128, "limit": 40}
QUICK = {"data": PipelineConfig(per_task=1, clusters=4, per_cluster=2, heldout=2, rounds=2, designs=DESIGNS,
                                critic=CriticConfig(llm_checks=False)),
         "train": TrainConfig(max_steps=2, batch_size=2), "answer_tokens": 32, "limit": 2}


def _train(out: Path, design: str, data_dir: Path, config: TrainConfig, retrain: bool) -> dict[str, Any] | None:
    """Train (or reuse) the adapter of `design`; None when the critic kept no pair of it (then there is nothing to
    train, and the evaluation goes on with the other design)."""
    adapter = out / f"adapter-{design}"
    if (adapter / METADATA_FILE).is_file() and not retrain:
        metadata = json.loads((adapter / METADATA_FILE).read_text(encoding="utf-8"))
    else:
        pairs = [p for p in read_pairs(data_dir / "pairs.jsonl") if p.design == design]
        if not pairs:
            print(f"{design}: the critic kept no pair, nothing to train", flush=True)
            return None
        result: TrainResult = train_augmenter(pairs, adapter, design=design, config=config, progress=False,
                                              overwrite=True)
        metadata = result.metadata
    losses = [r for _, r in read_jsonl(adapter / "losses.jsonl")]
    return {"design": design, "adapter": str(adapter), "metadata": metadata, "log": losses}


def _plot(trained: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run in trained:
        steps = [r for r in run["log"] if "loss" in r]
        evals = [r for r in run["log"] if "eval_loss" in r]
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label=f"{run['design']} train", alpha=0.7)
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o--", label=f"{run['design']} held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("LoRA fine-tuning of SmolLM2-135M on curated pairs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stage_record(report: StageReport) -> dict[str, Any]:
    """A stage's yields as the raw file keeps them (its output file names are this machine's, left out)."""
    record = asdict(report)
    record.pop("outputs", None)
    return record


def _stage_lines(stages: list[dict[str, Any]]) -> list[str]:
    lines = ["| stage | in | out | counts | s |", "|---|---|---|---|---|"]
    for r in stages:
        counts = json.dumps(r["counts"], ensure_ascii=False).replace("|", "/")
        lines.append(f"| {r['name']} | {r['items_in']} | {r['items_out']} | `{counts}` | {r['seconds']:.0f} |")
    return lines


def _loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"  # no held-out pair: no held-out loss


def _train_lines(trained: list[dict[str, Any]]) -> list[str]:
    lines = ["| design | pairs (train/held-out) | steps | held-out loss before → after | train loss first → last | s |",
             "|---|---|---|---|---|---|"]
    for run in trained:
        m = run["metadata"]
        losses, data = m["losses"], m["data"]
        lines.append(f"| {run['design']} | {data['train_pairs']}/{data['eval_pairs']} | {m['steps']} | "
                     f"{_loss(losses['eval_before'])} → {_loss(losses['final_eval'])} | "
                     f"{_loss(losses['first_train'])} → {_loss(losses['final_train'])} | {m['wall_time_s']:.0f} |")
    return lines


def _eval_lines(evaluation: dict[str, Any]) -> list[str]:
    lines = ["| comparison | n | wins | ties | losses | win rate | 95% CI | order consistency | mean P(first) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in evaluation["table"]:
        mean = "–" if row["mean_score"] is None else f"{row['mean_score']:.3f}"
        lines.append(f"| {row['comparison']} | {row['n']} | {row['wins']} | {row['ties']} | {row['losses']} | "
                     f"{row['win_rate']:.3f} | {row['ci95']} | {row['consistency']:.2f} | {mean} |")
    accuracy = evaluation["reference_accuracy"]
    if accuracy:
        lines += ["", "Judge-free check, answers that contain the reference answer: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()) + "."]
    return lines


def _examples(evaluation: dict[str, Any], k: int = 3) -> list[str]:
    lines: list[str] = []
    for record in evaluation["records"][:k]:
        lines.append(f"- prompt: `{record['prompt'][:160]!r}`")
        for name, system in record["systems"].items():
            lines.append(f"  - {name} wrote: `{system['output'][:200]!r}`")
    return lines


def raw_results(reports: list[StageReport], runs: dict[str, dict[str, Any] | None], report: AugmentationReport,
                seconds: float, out: Path) -> dict[str, Any]:
    """Everything the section is written from: stage yields, training metadata and logs (and the designs left
    untrained), every answer and verdict."""
    return {"out": str(out), "minutes": round(seconds / 60, 1), "stages": [_stage_record(r) for r in reports],
            "trained": [{**run, "adapter": Path(run["adapter"]).name} for run in runs.values() if run is not None],
            "untrained": [design for design, run in runs.items() if run is None],
            "evaluation": report.to_dict()}


def section(raw: dict[str, Any]) -> str:
    """The RESULTS.md section, from the raw results alone."""
    evaluation, trained = raw["evaluation"], raw["trained"]
    note = (f" ({raw['minutes']:.0f} min on this machine; steps reuse earlier outputs in `{raw['out']}`). Raw "
            f"results: `benchmarks/results/pas.json`. Versions: {raw['versions']}.")
    parts = [command_line(raw, note),
             "",
             "The same commands by hand: `prompthone pas build-data DIR --design pas --design rewrite --per-task 2 "
             "--clusters 64 --per-cluster 4`, `prompthone pas train DIR adapters/pas --design pas` (and "
             "`--design rewrite`), `prompthone pas eval DIR --pas adapter:adapters/pas --rewrite "
             "adapter:adapters/rewrite --answer-tokens 128`.",
             "", "Generator, judge, critic and target: SmolLM2-135M-Instruct (embedded GGUF on llama.cpp); "
             "complement models: LoRA adapters on the same model in torch (CPU). `rewrite` is a BPO-style rewriter "
             "(it replaces the prompt, as BPO does) whose pairs this pipeline made and whose LoRA adapter it "
             "trained, not Cheng et al.'s BPO model; the stand-ins for each of the paper's components are listed "
             "in the README's PAS section.", "",
             "### Data pipeline yields", "", *_stage_lines(raw["stages"]), "",
             "### Training", "", *_train_lines(trained),
             *(["", f"Not trained, the critic kept no pair: {', '.join(raw['untrained'])}."]
               if raw.get("untrained") else []), "", "![loss curves](pas-loss.png)", "",
             f"### Win rates on {evaluation['n']} held-out prompts (judge `{evaluation['judge']}`, "
             f"{evaluation['judge_mode']} mode, both orders)", "", *_eval_lines(evaluation), "",
             "First held-out prompts and what each augmenter wrote:", "", *_examples(evaluation), ""]
    return "\n".join(parts)


def publish(raw: dict[str, Any], results_md: Path) -> None:
    """Write the RESULTS.md section and its loss plot from the raw results (a full run's, or the committed file)."""
    _plot(raw["trained"], results_md.parent / "pas-loss.png")
    write_section(results_md, "pas", "PAS on the embedded model", section(raw))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--judge-model", default=None, help="judge spec (default: the embedded model)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a JSONL file of prompts (field `prompt`) instead of the BIG-bench corpus")
    add_raw_options(parser, RAW)
    args = parser.parse_args(argv)
    if args.from_raw:
        publish(json.loads(args.raw.read_text(encoding="utf-8")), args.results_md)
        print(f"updated {args.results_md} from {args.raw}")
        return 0
    plan = QUICK if args.quick else FULL
    args.out = args.out or Path("benchmarks/out/pas-quick" if args.quick else "benchmarks/out/pas")
    started = time.monotonic()
    data_dir = args.out / "data"
    data_config = replace(plan["data"], corpus=str(args.corpus)) if args.corpus else plan["data"]
    reports = build_data(data_dir, data_config, progress=False,
                         on_stage=lambda r: print(f"{r.name}: {r.items_in} → {r.items_out} ({r.seconds:.0f} s)",
                                                  flush=True))
    runs = {d: _train(args.out, d, data_dir, plan["train"], args.retrain) for d in DESIGNS}
    trained = [run for run in runs.values() if run is not None]
    if not trained:
        print("no design has a training pair: nothing to evaluate", file=sys.stderr)
        return 1
    print("trained:", [(t["design"], t["metadata"]["losses"]) for t in trained], flush=True)
    heldout = [r for _, r in read_jsonl(data_dir / "heldout.jsonl")][:plan["limit"]]
    references = [str(r.get("meta", {}).get("target", "")) for r in heldout]  # BIG-bench prompts carry answers
    target, judge, systems, cache = evaluation_systems(
        "local", args.judge_model, {t["design"]: f"adapter:{t['adapter']}" for t in trained},
        answer_tokens=plan["answer_tokens"], cache=args.out / "calls.sqlite")
    report = evaluate_augmentation([r["prompt"] for r in heldout], target_model=target, judge_model=judge,
                                   systems=systems, cache=cache, progress=False,
                                   references=references if any(references) else None)
    report.write(args.out / "eval")
    raw = raw_results(reports, runs, report, time.monotonic() - started, args.out)
    stamp(raw, "benchmarks.pas", argv)
    save_raw(raw, args.out / "pas.json")
    if not args.quick:
        save_raw(raw, args.raw)
        publish(raw, args.results_md)
    print(section(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
