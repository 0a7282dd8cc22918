"""Exact checks of the peer benchmark's contract and reading rules: the shared metric, the job file, the
finalization reserve, chance detection, calls-to-reach, the RESULTS.md section and the quick-mode checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.peers import report
from benchmarks.peers.__main__ import smoke_failures
from benchmarks.peers.harness import Record, Settings, TaskInfo
from benchmarks.peers.job import Job, Pair, PeerResult, answer_matches
from benchmarks.peers.runners.prompthone_runner import final_top_k

LABELS = ["positive", "negative"]


@pytest.mark.parametrize(("output", "target", "labels", "expected"), [
    ("The sentiment is Positive.", "positive", LABELS, True),
    ("negative, not positive", "positive", LABELS, False),  # the first label mentioned counts
    ("positively glowing", "positive", LABELS, False),  # whole words only
    ("Answer: 42.", "42", None, True),
    ("421", "42", None, False),
    ("42 apples", "42", None, True),
    ("", "positive", LABELS, False),
])
def test_the_peers_shared_metric(output: str, target: str, labels: list[str] | None, expected: bool) -> None:
    assert answer_matches(output, target, labels) is expected


def test_job_and_result_files_round_trip(tmp_path: Path) -> None:
    job = Job("dspy-gepa", 1, "http://127.0.0.1:1/r/x/v1", "m", 40, 64, "t", "Classify.", "Answer with one word.",
              LABELS, [Pair("good", "positive")], [Pair("bad", "negative")], str(tmp_path), options={"k": 1})
    job.write(tmp_path / "job.json")
    assert Job.read(tmp_path / "job.json") == job
    result = PeerResult("cut_off", "Be brief.", demos=[Pair("good", "positive")], internal_score=0.5)
    result.write(job.result_path)
    assert PeerResult.read(job.result_path) == result
    with pytest.raises(ValueError, match="status"):
        PeerResult("great", "x").write(tmp_path / "bad.json")


@pytest.mark.parametrize(("budget", "dev", "expected"), [(300, 30, 3), (200, 30, 1), (100, 30, 0), (40, 6, 1)])
def test_the_finalization_reserve_fits_half_the_budget(budget: int, dev: int, expected: int) -> None:
    assert final_top_k(budget, dev) == expected
    assert final_top_k(budget, dev, "auto") == 0  # its race on dev is its selection: the whole budget races


def _record(system: str, budget: int, score: float, calls: int, seed: int = 0, task: str = "t") -> Record:
    return Record(task, seed, budget, system, "ok", score, calls=calls, test_score_text=score - 0.1)


def _infos(majority: float = 0.5) -> list[TaskInfo]:
    return [TaskInfo("t", 0, LABELS, majority, {"train": 4, "dev": 2, "test": 4})]


def test_a_task_where_no_system_beats_the_majority_rate_is_at_chance() -> None:
    flat = report.rows_by_task([_record("seed", 0, 0.5, 0), _record("dspy-mipro", 40, 0.54, 40)])["t"]
    assert report.at_chance(flat, _infos())
    spread = report.rows_by_task([_record("seed", 0, 0.5, 0), _record("prompthone-ape", 40, 0.7, 30)])["t"]
    assert not report.at_chance(spread, _infos())


def test_a_task_at_chance_is_flagged_and_still_averaged_in(tmp_path: Path) -> None:
    records = [_record("seed", 0, 0.5, 0), _record("prompthone-ape", 40, 0.7, 38),
               _record("seed", 0, 0.5, 0, task="u"), _record("prompthone-ape", 40, 0.5, 40, task="u")]
    infos = [*_infos(), TaskInfo("u", 0, LABELS, 0.5, {"train": 4, "dev": 2, "test": 4})]
    settings = Settings(["t", "u"], [0], 40, [1.0], ["seed", "prompthone-ape"], tmp_path)
    text = report.render(records, infos, settings, "python -m benchmarks.peers", None)
    assert "Over 2 task(s): t, u." in text and "At chance (averaged in, flagged): u." in text
    assert "| prompthone-ape | 0.600 | 0.500 | 39 |" in text  # the mean of 0.7 and 0.5: the chance task counts


def test_calls_to_reach_is_the_smallest_level_that_matches_the_target() -> None:
    rows = report.rows_by_task([
        _record("prompthone-ape", 100, 0.55, 90), _record("prompthone-ape", 200, 0.65, 180, seed=0),
        _record("prompthone-ape", 200, 0.75, 170, seed=1), _record("prompthone-ape", 300, 0.7, 260)])["t"]
    assert report.calls_to_reach(rows, "prompthone-ape", 0.7) == pytest.approx(175)
    assert report.calls_to_reach(rows, "prompthone-ape", 0.9) is None
    assert report.full_rows(rows)["prompthone-ape"].budget == 300


def test_the_results_section_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## GREATER\n\nkeep me\n", encoding="utf-8")
    report.write_section(results, "first table\n")
    report.write_section(results, "second table\n")
    text = results.read_text(encoding="utf-8")
    assert "keep me" in text and "second table" in text and "first table" not in text
    assert text.count(report.SECTION_START) == 1


def test_render_and_plot_cover_every_system(tmp_path: Path) -> None:
    records = [_record("seed", 0, 0.5, 0), _record("prompthone-ape", 20, 0.6, 20),
               _record("prompthone-ape", 40, 0.7, 38), _record("dspy-copro", 20, 0.55, 20),
               _record("dspy-copro", 40, 0.6, 40)]
    settings = Settings(["t"], [0], 40, [0.5, 1.0], ["seed", "prompthone-ape", "dspy-copro"], tmp_path)
    grouped = report.rows_by_task(records)
    plot = report.plot("t", grouped["t"], tmp_path / "plot.png")
    assert plot.stat().st_size > 1000
    text = report.render(records, _infos(), settings, "python -m benchmarks.peers", plot)
    assert "| prompthone-ape | 0.700 ± 0.000 | 0.600 ± 0.000 |" in text  # log-prob, then text-scored
    assert "| dspy-copro | 0.600 ± 0.000 | 0.500 ± 0.000 |" in text
    assert "Over 1 task(s): t." in text
    # prompthone-ape reached the best peer's final score (0.6) at the 20-call level.
    assert "| prompthone-ape | 0.700 | 0.600 | 38 | 0 | 0 | 0 | 1/1 | 20 |" in text
    assert "task model = optimizer model" in text and "Where a system failed" not in text


def test_no_peer_ran_so_nothing_was_reached() -> None:
    records = [_record("seed", 0, 0.5, 0), _record("prompthone-ape", 40, 0.7, 38)]
    grouped = report.rows_by_task(records)
    text = report.aggregate_table(grouped, ["t"])
    assert "| prompthone-ape | 0.700 | 0.600 | 38 | 0 | 0 | 0 | — | — |" in text  # not "0/1": nothing to reach


def test_sources_count_each_commits_runs() -> None:
    records = [_record("prompthone-ape", 40, 0.7, 38, seed=s) for s in range(3)]
    for record, commit in zip(records, ["a" * 40, "b" * 40, "b" * 40], strict=True):
        record.extra["source_commit"] = commit
    assert report.sources(records) == f" Source commits: {'a' * 12} (1 run), {'b' * 12} (2 runs)."
    assert report.sources([_record("seed", 0, 0.5, 0)]) == ""


def test_quick_mode_flags_a_system_that_did_not_run_or_was_not_counted(tmp_path: Path) -> None:
    settings = Settings(["t"], [0], 40, [1.0], ["seed", "prompthone-ape", "textgrad"], tmp_path)
    records = [_record("seed", 0, 0.5, 0), _record("prompthone-ape", 40, 0.6, 0)]
    problems = smoke_failures(records, settings)
    assert any("prompthone-ape" in p and "0 calls" in p for p in problems)
    assert any("textgrad" in p and "no record" in p for p in problems)
    assert smoke_failures([_record("seed", 0, 0.5, 0), _record("prompthone-ape", 40, 0.6, 12),
                           _record("textgrad", 40, 0.5, 40)], settings) == []


def _scored(system: str, seed: int, outcomes: str, text: str, budget: int = 40) -> Record:
    return Record("t", seed, 0 if system == "seed" else budget, system, "ok", outcomes.count("1") / len(outcomes),
                  test_score_text=text.count("1") / len(text), outcomes=outcomes, outcomes_text=text)


def test_one_split_for_every_seed_gives_the_paired_table(tmp_path: Path) -> None:
    seed_prompt = "1" * 8 + "0" * 12  # 0.40 on 20 test examples, the same split for both seeds
    records = [_scored("seed", 0, seed_prompt, seed_prompt), _scored("seed", 1, seed_prompt, seed_prompt),
               _scored("prompthone-auto", 0, "1" * 18 + "00", seed_prompt),  # log-prob +0.5 on both seeds
               _scored("prompthone-auto", 1, "1" * 18 + "00", seed_prompt),
               _scored("textgrad", 0, seed_prompt, "1" * 9 + "0" * 11),  # +0.05 text on one example: noise
               _scored("textgrad", 1, seed_prompt, seed_prompt)]
    settings = Settings(["t"], [0, 1], 40, [1.0], ["seed", "prompthone-auto", "textgrad"], tmp_path, data_seed=0)
    table = report.paired_table("t", records, settings)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    assert list(rows) == ["seed", "prompthone-auto", "textgrad"]
    assert rows["seed"].startswith("| seed | 2 | 0.400 (") and "— (the reference)" in rows["seed"]
    auto = rows["prompthone-auto"].split(" | ")
    assert auto[2].startswith("0.900 (") and auto[3].startswith("+0.500 (")  # significant: no "no difference"
    assert auto[5].startswith("no difference: +0.000")  # its text reading: the seed's answers
    assert rows["textgrad"].split(" | ")[5].startswith("no difference: +0.025")  # per example, the mean over seeds
    # the default method head to head with every other system (auto − it; the seed prompt included)
    against = report.head_to_head_table("t", records, settings).splitlines()
    assert against[2].startswith("| prompthone-auto − seed | +0.500 (") and "no difference: +0.000" in against[2]
    assert against[3].startswith("| prompthone-auto − textgrad | +0.500 (") and "no difference: -0.025" in against[3]
    # the section carries both; a run whose seeds each had their own split has neither
    text = report.render(records, _infos(), settings, "python -m benchmarks.peers", None)
    assert "Paired on the same test examples" in text and "| prompthone-auto | 2 | 0.900 (" in text
    # the aggregate counts each system's verdicts against the seed prompt (log-prob) over the tasks
    assert report.verdicts(records, settings, ["t"]) == {"prompthone-auto": [1, 0, 0], "textgrad": [0, 1, 0]}
    assert "| 1 / 0 / 0 |" in text and "gain / no difference / loss" in text
    settings.data_seed = None
    assert report.paired_table("t", records, settings) == "" == report.head_to_head_table("t", records, settings)
    assert report.verdicts(records, settings, ["t"]) == {}
    assert "Paired on the same test examples" not in report.render(records, _infos(), settings, "c", None)
