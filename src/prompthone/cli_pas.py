"""`prompthone pas ...` and `prompthone augment`: PAS's data pipeline, training, evaluation and the plug-in.

Thin, like the rest of the CLI: each command parses options and calls `prompthone.augment`. The design `rewrite` is
a BPO-style rewriter (it replaces the prompt, as BPO does) built and trained by prompthone's own pipeline, not
Cheng et al.'s BPO model; its old name `bpo` is still accepted, with a deprecation warning on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from prompthone.cli_common import CacheOpt, NoCacheOpt, SeedOpt, announced_meta_model, cache_setting, err, guard, out
from prompthone.errors import InputError

pas_app = typer.Typer(name="pas", no_args_is_help=True, rich_markup_mode="rich",
                      help="PAS: curate (prompt, complement) data, fine-tune a complement model, evaluate it.")
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
REWRITE_HELP = "rewrite: a BPO-style rewriter trained by this pipeline, not Cheng et al.'s BPO model"


def _design(name: str, option: str = "--design") -> str:
    """A design named on the command line; the old name 'bpo' still means 'rewrite' (said on stderr)."""
    from prompthone.augment.designs import RENAMED, design_name

    old = name.strip().lower()
    if old in RENAMED:
        err.print(f"warning: {option} {old} is deprecated, use {option} {RENAMED[old]} (the same design: "
                  "prompthone's own rewriter, not Cheng et al.'s BPO)", highlight=False, markup=False)
    return design_name(name)


def _stage_row(report: Any) -> list[str]:
    counts = {k: v for k, v in report.counts.items() if not isinstance(v, dict)}
    nested = {k: v for k, v in report.counts.items() if isinstance(v, dict)}
    detail = ", ".join(f"{k}={v}" for k, v in counts.items())
    for key, value in nested.items():
        if key in ("pas", "rewrite", "bpo"):  # a design's critique counts ('bpo': a manifest from before the rename)
            value = {k: v for k, v in value.items() if k in ("pairs", "rejected", "yield", "final_rejection_reasons")}
        detail += f"; {key}: " + json.dumps(value, ensure_ascii=False)
    return [report.name, str(report.items_in), str(report.items_out), f"{report.seconds:.1f}",
            "reused" if report.reused else "ran", detail]


@pas_app.command("build-data")
@guard
def build_data(
    out_dir: Annotated[Path, typer.Argument(help="Directory for the stage files and manifest.json (resumable).")],
    corpus: Annotated[Path | None, typer.Option(help="JSONL corpus of prompts (default: BIG-bench task inputs).")]
    = None,
    field: Annotated[str, typer.Option(help="Corpus field holding the prompt.")] = "prompt",
    per_task: Annotated[int, typer.Option(help="Default corpus: prompts drawn per BIG-bench task.")] = 8,
    dedup_threshold: Annotated[float, typer.Option(help="Cosine similarity at which prompts are near-duplicates.")]
    = 0.92,
    clusters: Annotated[int, typer.Option(help="k-means clusters for diverse sampling.")] = 64,
    per_cluster: Annotated[int, typer.Option(help="Prompts sampled per cluster.")] = 8,
    min_quality: Annotated[float | None, typer.Option(help="Minimum judge rating (1-5); default: calibrated on "
                                                      "the golden prompts.")] = None,
    classifier: Annotated[str, typer.Option(help="embedding | llm")] = "embedding",
    heldout: Annotated[int, typer.Option(help="Prompts set aside for `pas eval` (heldout.jsonl).")] = 40,
    design: Annotated[list[str] | None, typer.Option("--design", "-d", help=f"pas and/or rewrite; repeatable "
                                                     f"({REWRITE_HELP}).")] = None,
    rounds: Annotated[int, typer.Option(help="Critique-and-regenerate rounds for failed pairs.")] = 3,
    golden: Annotated[list[str] | None, typer.Option(help="DESIGN=FILE: your golden pairs instead of ours.")] = None,
    llm_checks: Annotated[bool, typer.Option(help="Add the judge's calibrated yes/no checks to the critic.")] = True,
    model: Annotated[str, typer.Option("--model", "-m", help="Model that generates complements.")] = "local",
    judge_model: Annotated[str | None, typer.Option(help="Model that rates and critiques (default: --model).")]
    = None,
    seed: SeedOpt = 0,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Curate training pairs: corpus → dedup → cluster sampling → quality → categories → generate → critique."""
    from prompthone.augment.api import build_data as run
    from prompthone.augment.critic import CriticConfig
    from prompthone.augment.pipeline import PipelineConfig

    golden_files = {}
    for item in golden or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise InputError(f"expected DESIGN=FILE, got {item!r}", field="--golden")
        golden_files[_design(name, "--golden")] = path.strip()
    config = PipelineConfig(corpus=str(corpus) if corpus else None, corpus_field=field, per_task=per_task,
                            dedup_threshold=dedup_threshold, clusters=clusters, per_cluster=per_cluster,
                            min_quality=min_quality, classifier=classifier, heldout=heldout,
                            designs=tuple(_design(d) for d in design or ["pas"]), rounds=rounds, golden=golden_files,
                            critic=CriticConfig(llm_checks=llm_checks), seed=seed)
    reports = run(out_dir, config, model=model, judge_model=judge_model, cache=cache_setting(no_cache, cache),
                  progress=not quiet)
    table = Table(title=f"pas build-data → {out_dir}")
    for col in ("stage", "in", "out", "s", "", "counts"):
        table.add_column(col, overflow="fold")
    for report in reports:
        table.add_row(*_stage_row(report))
    out.print(table)
    out.print(f"training pairs: {out_dir / 'pairs.jsonl'}; held-out prompts: {out_dir / 'heldout.jsonl'}",
              highlight=False)


def _pairs_for(data: Path, design: str) -> list[Any]:
    from prompthone.augment.pairs import read_pairs

    path = data / "pairs.jsonl" if data.is_dir() else data
    pairs = [p for p in read_pairs(path) if p.design == design]
    if not pairs:
        raise InputError(f"no pairs for design {design!r}", path=str(path))
    return pairs


@pas_app.command("train")
@guard
def train(
    data: Annotated[Path, typer.Argument(help="A build-data directory or a pairs JSONL file.")],
    out_dir: Annotated[Path, typer.Argument(help="Where the adapter is written (use as --model adapter:DIR).")],
    design: Annotated[str, typer.Option("--design", "-d", help=f"pas | rewrite ({REWRITE_HELP}).")] = "pas",
    method: Annotated[str, typer.Option(help="lora | full")] = "lora",
    epochs: Annotated[int, typer.Option(help="Passes over the pairs.")] = 3,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default 2e-4 LoRA, 2e-5 full).")] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 8,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu | cuda (default: cuda when present).")] = None,
    seed: SeedOpt = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing adapter directory.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the embedded SmolLM2 (LoRA by default) to write complements (pas) or rewrites (rewrite)."""
    from prompthone.augment.train import TrainConfig, train_augmenter

    design = _design(design)
    config = TrainConfig(method=method, epochs=epochs, max_steps=max_steps, learning_rate=lr, batch_size=batch_size,
                         lora_r=lora_r, device=device, seed=seed)
    result = train_augmenter(_pairs_for(data, design), out_dir, design=design, config=config, progress=not quiet,
                             overwrite=overwrite)
    evals = result.eval_losses
    out.print(f"trained {design} ({method}) on {result.train_pairs} pairs, {len(result.losses)} steps, "
              f"{result.wall_time_s:.0f} s; held-out loss {evals[0][1]:.3f} → {evals[-1][1]:.3f}"
              if evals else f"trained {design} on {result.train_pairs} pairs", highlight=False)
    out.print(f"adapter: {result.out_dir} (use --model adapter:{result.out_dir})", highlight=False)


def _heldout(path: Path, limit: int | None) -> tuple[list[str], list[str] | None]:
    from prompthone.augment.pairs import prompt_text, read_jsonl

    path = path / "heldout.jsonl" if path.is_dir() else path
    prompts, references = [], []
    for line, record in read_jsonl(path):
        prompts.append(prompt_text(record, path, line))
        references.append(str((record.get("meta") or {}).get("target", record.get("target", "")) or ""))
    if not prompts:
        raise InputError("no prompts found", path=str(path))
    prompts, references = prompts[:limit], references[:limit]
    return prompts, references if all(references) else None


@pas_app.command("eval")
@guard
def evaluate(
    prompts: Annotated[Path, typer.Argument(help="Held-out prompts: a build-data directory or a JSONL file.")],
    pas: Annotated[str | None, typer.Option(help="PAS complement model, e.g. adapter:adapters/pas.")] = None,
    rewrite: Annotated[str | None, typer.Option(help="Rewrite model (the BPO-style rewriter of `pas train --design "
                                                "rewrite`, not Cheng et al.'s BPO), e.g. adapter:adapters/rewrite.")]
    = None,
    bpo: Annotated[str | None, typer.Option(hidden=True, help="Deprecated name of --rewrite.")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Target model that answers.")] = "local",
    judge_model: Annotated[str | None, typer.Option(help="Pairwise judge (default: --model).")] = None,
    judge_mode: Annotated[str, typer.Option(help="auto | labels | generate")] = "auto",
    answer_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 256,
    limit: Annotated[int | None, typer.Option(help="Use at most this many prompts.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where eval.json and eval.md are written.")]
    = Path("runs/pas-eval"),
    seed: SeedOpt = 0,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Pairwise judged win rate of answers with vs without augmentation (both answer orders), PAS vs the rewriter."""
    from prompthone.augment.api import evaluation_systems
    from prompthone.augment.evaluate import evaluate_augmentation

    if bpo is not None:
        if rewrite is not None:
            raise InputError("--bpo is the deprecated name of --rewrite: give only --rewrite", field="--bpo")
        err.print("warning: --bpo is deprecated, use --rewrite (the same model: prompthone's own rewriter, not "
                  "Cheng et al.'s BPO)", highlight=False, markup=False)
        rewrite = bpo
    texts, references = _heldout(prompts, limit)
    target, judge, systems, call_cache = evaluation_systems(model, judge_model, {"pas": pas, "rewrite": rewrite},
                                                            answer_tokens=answer_tokens,
                                                            cache=cache_setting(no_cache, cache))
    report = evaluate_augmentation(texts, target_model=target, judge_model=judge, systems=systems,
                                   cache=call_cache, judge_mode=judge_mode,  # type: ignore[arg-type]
                                   seed=seed, progress=not quiet, references=references)
    json_path, md_path = report.write(out_dir)
    table = Table(title=f"win rates on {len(texts)} prompts (judge: {report.judge_id})")
    for col in ("comparison", "wins", "ties", "losses", "win rate", "95% CI", "consistency", "mean P(first)"):
        table.add_column(col)
    for row in report.table():
        table.add_row(str(row["comparison"]), str(row["wins"]), str(row["ties"]), str(row["losses"]),
                      f"{row['win_rate']:.3f}", str(row["ci95"]), f"{row['consistency']:.2f}",
                      "–" if row["mean_score"] is None else f"{row['mean_score']:.3f}")
    out.print(table)
    accuracy = report.reference_accuracy()
    if accuracy:
        out.print("answers containing the reference: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()),
                  highlight=False)
    out.print(f"written: {md_path} and {json_path}", highlight=False)


@guard
def augment(
    prompt: Annotated[str, typer.Argument(help="The user prompt to augment and answer.")],
    complement_model: Annotated[str | None, typer.Option(
        "--complement-model", "-c", help="Model that writes the complement, e.g. adapter:adapters/pas. Default: as "
        "a meta model, the strongest embedded model installed when --model is embedded (said on stderr), else "
        "--model itself.", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Target model that answers.")] = "local",
    design: Annotated[str | None, typer.Option(help="pas | rewrite (default: the adapter's own, else pas).")] = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """PAS: write a complementary prompt for PROMPT, append it, and answer with the target model."""
    from dataclasses import asdict

    from prompthone.augment.api import augment as run

    complement_model = complement_model or announced_meta_model(model, as_json, role="complement model",
                                                                option="--complement-model")
    result = run([prompt], complement_model=complement_model, target_model=model,
                 design=_design(design) if design is not None else None,
                 cache=cache_setting(no_cache, cache))[0]
    if as_json:
        out.print_json(json.dumps(asdict(result)))
        return
    out.print(f"[bold]complement:[/] {result.output}", highlight=False)
    out.print(f"[bold]answer:[/] {result.answer}", highlight=False)
