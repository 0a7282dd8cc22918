"""`python -m benchmarks.peers`: prompthone vs DSPy, TextGrad and promptolution on one server, one budget, one scorer.

Full mode (the published table, hours on 2 CPU cores): the regime's suite, seeds, split and budget levels; writes the
raw results (`--raw`, by default the regime's file under benchmarks/results/; rewritten after every run, and its
finished runs carried into the next invocation, so a run of many hours can be done in committed pieces) and the
RESULTS.md section from them.
`--regime qwen` runs Qwen2.5-Coder-0.5B as task model with Qwen2.5-Coder-1.5B as every system's proposer; the
default `smollm` regime runs SmolLM2-135M in both roles. `--quick` (CI smoke test, a few minutes): one small task,
one seed, a tiny budget, every system; it checks that every system ran and was counted at the proxy, not who won.
`--from-raw FILE` writes the RESULTS.md section from a committed raw file without running anything. See
benchmarks/README.md for the fairness rules.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.peers import report
from benchmarks.peers.harness import Record, Settings, TaskInfo, run_suite, slug
from benchmarks.peers.job import STATUSES
from benchmarks.peers.raw import Raw, read_raw, write_raw
from benchmarks.peers.regimes import REGIMES
from benchmarks.peers.systems import SEED, select

BENCH_DIR = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = list(REGIMES["smollm"].tasks)
QUICK_TASK = DEFAULT_TASKS[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--regime", choices=sorted(REGIMES), default="smollm",
                        help="task model and proposer: smollm (SmolLM2-135M in both roles, the default) or qwen "
                             "(Qwen2.5-Coder-0.5B task model, Qwen2.5-Coder-1.5B proposer for every system)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 task, 1 seed, tiny budget, all systems")
    parser.add_argument("--tasks", nargs="+", help="task specs (default: the regime's suite)")
    parser.add_argument("--seeds", type=int, nargs="+", help="optimizer seeds, and split seeds unless the regime "
                        "fixes one split (default: smollm 0 1 2; qwen 0-4 on one split)")
    parser.add_argument("--budget", type=int, help="calls per run at the full level, task-model calls in a regime "
                                                   "with a separate proposer (default 300; quick 24)")
    parser.add_argument("--levels", type=float, nargs="+",
                        help="fractions of the budget, each a separate run (default: the regime's; quick 1)")
    parser.add_argument("--systems", nargs="+", help="systems to run (default: all); the seed prompt always runs")
    parser.add_argument("--max-tokens", type=int, help="completion cap per call at the proxy (default 256; quick 48)")
    parser.add_argument("--limit", type=int, help="examples per task before the split (default: smollm 150; qwen "
                        "290, i.e. 60 train / 30 dev / 200 test; quick 30)")
    parser.add_argument("--proposer-budget", type=int,
                        help="proposer calls per run, a runaway guard (default: the run's budget)")
    parser.add_argument("--server-url", help="an OpenAI-compatible base URL (…/v1) instead of the embedded task model")
    parser.add_argument("--server-model", help="the model name at --server-url (default: the server's first)")
    parser.add_argument("--out", type=Path, help="output directory; rerunning with it resumes (default: "
                                                  "benchmarks/out/peers[-<regime>][-quick])")
    parser.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/RESULTS.md in full "
                                                     "mode and with --from-raw; never in quick mode unless given)")
    parser.add_argument("--raw", type=Path, help="raw results file to write after the run (default: the regime's "
                                                 "file under benchmarks/results/ in full mode; none in quick mode)")
    parser.add_argument("--from-raw", type=Path, metavar="FILE",
                        help="write the RESULTS.md section (and the plot beside it) from this raw file; run nothing")
    parser.add_argument("--plot-task", help="task for the score-vs-calls plot (default: the first above chance)")
    parser.add_argument("--runner-timeout", type=float, help="wall-clock limit per run, seconds (default: the "
                                                             "regime's, 1800 for smollm)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    regime = REGIMES[args.regime]
    suffix = ("" if regime.name == "smollm" else f"-{regime.name}") + ("-quick" if quick else "")
    split = None if quick else regime.split
    return Settings(
        tasks=args.tasks or ([regime.tasks[0]] if quick else list(regime.tasks)),
        seeds=args.seeds or ([0] if quick else list(regime.seeds)),
        budget=args.budget or (24 if quick else 300),
        levels=args.levels or ([1.0] if quick else list(regime.levels)),
        systems=select(args.systems),
        out=args.out or BENCH_DIR / "out" / f"peers{suffix}",
        max_tokens=args.max_tokens or (48 if quick else 256),
        limit=args.limit or (30 if quick else split.limit if split else 150),
        data_seed=split.data_seed if split else None, dev_size=split.dev if split else None,
        test_size=split.test if split else None,
        server_url=args.server_url, server_model=args.server_model,
        runner_timeout_s=args.runner_timeout or (1800.0 if quick else regime.runner_timeout_s), quick=quick,
        regime=regime.name, task_model=regime.task_model, proposer_model=regime.proposer_model,
        proposer_budget=args.proposer_budget)


def smoke_failures(records: list[Record], settings: Settings) -> list[str]:
    """What the quick mode checks: every system ran, wrote a result, was counted within its budget (and within the
    proposer's cap), and its final prompt was scored both ways."""
    problems = []
    for task in settings.tasks:
        for seed in settings.seeds:
            for name in settings.systems:
                found = [r for r in records if (r.task, r.seed, r.system) == (task, seed, name)]
                if not found:
                    problems.append(f"{name} on {task} seed {seed}: no record")
                for r in found:
                    if r.status not in STATUSES or "wrote no result" in r.detail:
                        problems.append(f"{name} on {task} seed {seed}: no result ({r.detail[:200]})")
                    if name != SEED and not 0 < r.calls <= r.budget:
                        problems.append(f"{name} on {task} seed {seed}: {r.calls} calls counted for budget {r.budget}")
                    cap = settings.proposer_budget or r.budget
                    if name != SEED and settings.separate_proposer and r.proposer_calls > cap:
                        problems.append(f"{name} on {task} seed {seed}: {r.proposer_calls} proposer calls counted "
                                        f"for a cap of {cap}")
                    if r.test_score is None or r.test_score_text is None:
                        problems.append(f"{name} on {task} seed {seed}: final prompt not scored both ways")
    return problems


def publish(raw: Raw, results: Path | None, plot_task: str | None, out: Path | None = None) -> str:
    """Render the section from `raw`; write it to `out`/peers.md and to `results` (plot beside it) when given."""
    settings, records, infos = raw.settings, raw.records, raw.infos
    grouped = report.rows_by_task(records)
    plot_dir = out or (results.parent if results is not None else None)
    plot_task = plot_task or next((t for t in settings.tasks if t in grouped and not report.at_chance(
        grouped[t], [i for i in infos if i.task == t])), settings.tasks[0])
    plot_path = report.plot(plot_task, grouped[plot_task], plot_dir / f"peers-{slug(plot_task)}.png") \
        if plot_task in grouped and plot_dir is not None else None
    text = report.render(records, infos, settings, raw.command, plot_path, raw.versions, raw.machine)
    if out is not None:
        (out / "peers.md").write_text(text, encoding="utf-8")
    if results is not None:
        if plot_path is not None and plot_path.parent.resolve() != results.parent.resolve():
            (results.parent / plot_path.name).write_bytes(plot_path.read_bytes())
        report.write_section(results, text)
        print(f"[peers] updated {results}")
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_raw is not None:
        publish(read_raw(args.from_raw), args.results or BENCH_DIR / "RESULTS.md", args.plot_task)
        return 0
    settings = settings_from(args)
    command = "python -m benchmarks.peers " + shlex.join(sys.argv[1:] if argv is None else argv)
    raw_path = args.raw or (None if settings.quick else REGIMES[settings.regime].raw)
    earlier = _earlier(raw_path, settings)

    def checkpoint(records: list[Record], infos: list[TaskInfo]) -> None:
        assert raw_path is not None
        write_raw(raw_path, _raw(command, settings, records, infos, earlier))

    records, infos = run_suite(settings, earlier.records if earlier else (), checkpoint if raw_path else None)
    raw = _raw(command, settings, records, infos, earlier)
    if raw_path is not None:
        print(f"[peers] raw results: {write_raw(raw_path, raw)}")
    results = args.results or (None if settings.quick else BENCH_DIR / "RESULTS.md")
    print(publish(raw, results, args.plot_task, settings.out))
    if settings.quick:
        problems = smoke_failures(records, settings)
        for problem in problems:
            print(f"[peers] SMOKE FAILURE: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0


def _earlier(raw_path: Path | None, settings: Settings) -> Raw | None:
    """The raw file this invocation adds to, when there is one: its finished runs are carried in and kept, so a
    run of many hours can span sessions (or machines) that keep only what is committed. One made under other
    settings stops the run, naming the fields, as resuming `--out` does."""
    if raw_path is None or not raw_path.exists():
        return None
    raw = read_raw(raw_path)
    settings.refuse_mixing(raw.settings.to_dict(), raw_path, "adding to it",
                           "Pass --raw to write elsewhere, or remove that file to start over.")
    return raw


def _raw(command: str, settings: Settings, records: list[Record], infos: list[TaskInfo], earlier: Raw | None) -> Raw:
    """The raw file's content: this invocation's runs (its tasks, seeds, systems and levels), and the earlier raw
    file's runs outside them, kept (the settings list the union, so the section shows them all)."""
    def mine(task: str, seed: int, system: str = SEED, budget: int = 0) -> bool:
        return (task in settings.tasks and seed in settings.seeds and system in settings.systems
                and budget in (0, *settings.budgets()))

    records = [r for r in records if mine(r.task, r.seed, r.system, r.budget)]
    infos = [i for i in infos if mine(i.task, i.seed)]
    scope = settings
    if earlier is not None:
        records += [r for r in earlier.records if not mine(r.task, r.seed, r.system, r.budget)]
        have = {(i.task, i.seed) for i in infos}
        infos += [i for i in earlier.infos if (i.task, i.seed) not in have]
        scope = replace(settings, tasks=_union(settings.tasks, earlier.settings.tasks),
                        seeds=sorted(set(settings.seeds) | set(earlier.settings.seeds)),
                        systems=_union(settings.systems, earlier.settings.systems),
                        levels=sorted(set(settings.levels) | set(earlier.settings.levels)))
    return Raw(command, scope, report.versions(records), report.machine(), infos, records)


def _union(first: list[str], then: list[str]) -> list[str]:
    return first + [name for name in then if name not in first]


if __name__ == "__main__":
    sys.exit(main())
