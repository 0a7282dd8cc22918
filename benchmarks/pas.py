"""PAS end to end on the embedded model: curated data → LoRA complement model (and a rewriter) → judged win rates.

    python -m benchmarks.pas                       # ~1 h on 2 cores: data, two LoRA runs, evaluation
    python -m benchmarks.pas --quick               # tiny sizes: checks every step runs (~10 min)
    python -m benchmarks.pas --judge-model openai:http://127.0.0.1:8000/v1/qwen2.5-7b   # a stronger judge

Every step reuses what an earlier run left in `--out`: the pipeline resumes stage by stage, a finished adapter is
kept (pass --retrain to train again), and the evaluation's calls come from the call cache. The section written
to RESULTS.md holds the stage yields, the training losses (and `benchmarks/pas-loss.png`), the win rates of PAS
and of the rewriter against no augmentation and against each other, and the judge-free reference check. Nothing is
asserted: the exit status is 1 only if a step failed.

The rewriter (design `rewrite`) is BPO-style: it replaces the prompt, as BPO does, but this pipeline builds its data
and trains it, like the PAS model; it is not Cheng et al.'s released BPO model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.results_md import write_section
from prompthone.augment.api import build_data, evaluation_systems
from prompthone.augment.evaluate import AugmentationReport, evaluate_augmentation
from prompthone.augment.pairs import read_jsonl, read_pairs
from prompthone.augment.pipeline import PipelineConfig, StageReport
from prompthone.augment.train import TrainConfig, TrainResult, train_augmenter
from prompthone.models.adapters import METADATA_FILE

DESIGNS = ("pas", "rewrite")
FULL = {"data": PipelineConfig(per_task=2, clusters=64, per_cluster=4, heldout=40, rounds=3, designs=DESIGNS),
        "train": TrainConfig(epochs=3, batch_size=8), "answer_tokens": 128, "limit": 40}
QUICK = {"data": PipelineConfig(per_task=1, clusters=8, per_cluster=3, heldout=4, rounds=1, designs=DESIGNS),
         "train": TrainConfig(max_steps=3, batch_size=4), "answer_tokens": 48, "limit": 4}


def _train(out: Path, design: str, data_dir: Path, config: TrainConfig, retrain: bool) -> dict[str, Any]:
    adapter = out / f"adapter-{design}"
    if (adapter / METADATA_FILE).is_file() and not retrain:
        metadata = json.loads((adapter / METADATA_FILE).read_text(encoding="utf-8"))
    else:
        pairs = [p for p in read_pairs(data_dir / "pairs.jsonl") if p.design == design]
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


def _stage_lines(reports: list[StageReport]) -> list[str]:
    lines = ["| stage | in | out | counts | s |", "|---|---|---|---|---|"]
    for r in reports:
        counts = json.dumps(r.counts, ensure_ascii=False).replace("|", "/")
        lines.append(f"| {r.name} | {r.items_in} | {r.items_out} | `{counts}` | {r.seconds:.0f} |")
    return lines


def _train_lines(trained: list[dict[str, Any]]) -> list[str]:
    lines = ["| design | pairs (train/held-out) | steps | held-out loss before → after | train loss first → last |"
             " | s |", "|---|---|---|---|---|---|"]
    for run in trained:
        m = run["metadata"]
        losses, data = m["losses"], m["data"]
        lines.append(f"| {run['design']} | {data['train_pairs']}/{data['eval_pairs']} | {m['steps']} | "
                     f"{losses['eval_before']:.3f} → {losses['final_eval']:.3f} | {losses['first_train']:.3f} → "
                     f"{losses['final_train']:.3f} | {m['wall_time_s']:.0f} |")
    return lines


def _eval_lines(report: AugmentationReport) -> list[str]:
    lines = ["| comparison | n | wins | ties | losses | win rate | 95% CI | order consistency | mean P(first) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in report.table():
        mean = "–" if row["mean_score"] is None else f"{row['mean_score']:.3f}"
        lines.append(f"| {row['comparison']} | {row['n']} | {row['wins']} | {row['ties']} | {row['losses']} | "
                     f"{row['win_rate']:.3f} | {row['ci95']} | {row['consistency']:.2f} | {mean} |")
    accuracy = report.reference_accuracy()
    if accuracy:
        lines += ["", "Judge-free check, answers that contain the reference answer: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()) + "."]
    return lines


def _examples(report: AugmentationReport, k: int = 3) -> list[str]:
    lines: list[str] = []
    for record in report.records()[:k]:
        lines.append(f"- prompt: `{record['prompt'][:160]!r}`")
        for name, system in record["systems"].items():
            lines.append(f"  - {name} wrote: `{system['output'][:200]!r}`")
    return lines


def _section(args: argparse.Namespace, reports: list[StageReport], trained: list[dict[str, Any]],
             report: AugmentationReport, seconds: float) -> str:
    command = "python -m benchmarks.pas" + (" --quick" if args.quick else "")
    if args.judge_model:
        command += f" --judge-model {args.judge_model}"
    parts = [f"Command: `{command}` ({seconds / 60:.0f} min on this machine; steps reuse earlier outputs in "
             f"`{args.out}`).", "",
             "The same commands by hand: `prompthone pas build-data DIR --design pas --design rewrite --per-task 2 "
             "--clusters 64 --per-cluster 4`, `prompthone pas train DIR adapters/pas --design pas` (and "
             "`--design rewrite`), `prompthone pas eval DIR --pas adapter:adapters/pas --rewrite "
             "adapter:adapters/rewrite --answer-tokens 128`.",
             "", "Generator, judge, critic and target: SmolLM2-135M-Instruct (embedded GGUF on llama.cpp); "
             "complement models: LoRA adapters on the same model in torch (CPU). `rewrite` is a BPO-style rewriter "
             "(it replaces the prompt, as BPO does) whose pairs this pipeline made and whose LoRA adapter it "
             "trained, not Cheng et al.'s BPO model; the stand-ins for each of the paper's components are listed "
             "in the README's PAS section.", "",
             "### Data pipeline yields", "", *_stage_lines(reports), "",
             "### Training", "", *_train_lines(trained), "", "![loss curves](pas-loss.png)", "",
             f"### Win rates on {len(report.prompts)} held-out prompts (judge `{report.judge_id}`, "
             f"{report.judge_mode} mode, both orders)", "", *_eval_lines(report), "",
             "First held-out prompts and what each augmenter wrote:", "", *_examples(report), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--judge-model", default=None, help="judge spec (default: the embedded model)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--results-md", type=Path, default=Path("benchmarks/RESULTS.md"))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    args.out = args.out or Path("benchmarks/out/pas-quick" if args.quick else "benchmarks/out/pas")
    started = time.monotonic()
    data_dir = args.out / "data"
    reports = build_data(data_dir, plan["data"], progress=False,
                         on_stage=lambda r: print(f"{r.name}: {r.items_in} → {r.items_out} ({r.seconds:.0f} s)",
                                                  flush=True))
    trained = [_train(args.out, d, data_dir, plan["train"], args.retrain) for d in DESIGNS]
    print("trained:", [(t["design"], t["metadata"]["losses"]) for t in trained], flush=True)
    heldout = [r for _, r in read_jsonl(data_dir / "heldout.jsonl")][:plan["limit"]]
    target, judge, systems, cache = evaluation_systems(
        "local", args.judge_model, {t["design"]: f"adapter:{t['adapter']}" for t in trained},
        answer_tokens=plan["answer_tokens"], cache=args.out / "calls.sqlite")
    report = evaluate_augmentation([r["prompt"] for r in heldout], target_model=target, judge_model=judge,
                                   systems=systems, cache=cache, progress=False,
                                   references=[str(r.get("meta", {}).get("target", "")) for r in heldout])
    report.write(args.out / "eval")
    _plot(trained, args.results_md.parent / "pas-loss.png")
    text = _section(args, reports, trained, report, time.monotonic() - started)
    if not args.quick:
        write_section(args.results_md, "pas", "PAS on the embedded model", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
