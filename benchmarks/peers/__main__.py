"""`python -m benchmarks.peers`: prompthone vs DSPy, TextGrad and promptolution on one server, one budget, one scorer.

Full mode (the published table, hours on 2 CPU cores): the default suite, 3 seeds, three budget levels.
`--quick` (CI smoke test, a few minutes): one small task, one seed, a tiny budget, every system; it checks that
every system ran and was counted at the proxy, not who won. See benchmarks/README.md for the fairness rules.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.peers import report
from benchmarks.peers.harness import Record, Settings, run_suite, slug
from benchmarks.peers.job import STATUSES
from benchmarks.peers.systems import SEED, select

DEFAULT_TASKS = ["gen:sentiment_templates", "gen:boolean_expressions", "bbh:navigate", "bbh:sports_understanding"]
QUICK_TASK = "gen:sentiment_templates"
BENCH_DIR = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 task, 1 seed, tiny budget, all systems")
    parser.add_argument("--tasks", nargs="+", help=f"task specs (default: {' '.join(DEFAULT_TASKS)})")
    parser.add_argument("--seeds", type=int, nargs="+", help="split and optimizer seeds (default: 0 1 2)")
    parser.add_argument("--budget", type=int, help="calls per run at the full level (default 300; quick 24)")
    parser.add_argument("--levels", type=float, nargs="+",
                        help="fractions of the budget, each a separate run (default 0.33 0.67 1; quick 1)")
    parser.add_argument("--systems", nargs="+", help="systems to run (default: all); the seed prompt always runs")
    parser.add_argument("--max-tokens", type=int, help="completion cap per call at the proxy (default 256; quick 48)")
    parser.add_argument("--limit", type=int, help="examples per task before the split (default 150; quick 30)")
    parser.add_argument("--server-url", help="an OpenAI-compatible base URL (…/v1) instead of the embedded model")
    parser.add_argument("--server-model", help="the model name at --server-url (default: the server's first)")
    parser.add_argument("--out", type=Path, help="output directory; rerunning with it resumes (default: "
                                                  "benchmarks/out/peers[-quick])")
    parser.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/RESULTS.md in full "
                                                     "mode; never in quick mode unless given)")
    parser.add_argument("--plot-task", help="task for the score-vs-calls plot (default: the first above chance)")
    parser.add_argument("--runner-timeout", type=float, default=1800.0, help="wall-clock limit per run, seconds")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        tasks=args.tasks or ([QUICK_TASK] if quick else DEFAULT_TASKS),
        seeds=args.seeds or ([0] if quick else [0, 1, 2]),
        budget=args.budget or (24 if quick else 300),
        levels=args.levels or ([1.0] if quick else [0.33, 0.67, 1.0]),
        systems=select(args.systems),
        out=args.out or BENCH_DIR / "out" / ("peers-quick" if quick else "peers"),
        max_tokens=args.max_tokens or (48 if quick else 256),
        limit=args.limit or (30 if quick else 150),
        server_url=args.server_url, server_model=args.server_model,
        runner_timeout_s=args.runner_timeout, quick=quick)


def smoke_failures(records: list[Record], settings: Settings) -> list[str]:
    """What the quick mode checks: every system ran, wrote a result, and was counted within its budget."""
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
                    if r.test_score is None:
                        problems.append(f"{name} on {task} seed {seed}: final prompt not scored")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    command = "python -m benchmarks.peers " + shlex.join(sys.argv[1:] if argv is None else argv)
    records, infos = run_suite(settings)
    grouped = report.rows_by_task(records)
    plot_task = args.plot_task or next(
        (t for t in settings.tasks if t in grouped and not report.at_chance(grouped[t], [i for i in infos
                                                                                          if i.task == t])),
        settings.tasks[0])
    plot_path = report.plot(plot_task, grouped[plot_task], settings.out / f"peers-{slug(plot_task)}.png") \
        if plot_task in grouped else None
    text = report.render(records, infos, settings, command, plot_path)
    (settings.out / "peers.md").write_text(text, encoding="utf-8")
    print(text)
    results = args.results or (None if settings.quick else BENCH_DIR / "RESULTS.md")
    if results is not None:
        if plot_path is not None:
            target = results.parent / plot_path.name
            target.write_bytes(plot_path.read_bytes())
        report.write_section(results, text)
        print(f"[peers] updated {results}")
    if settings.quick:
        problems = smoke_failures(records, settings)
        for problem in problems:
            print(f"[peers] SMOKE FAILURE: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
