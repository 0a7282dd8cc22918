"""The rendered report of each fixture run: every section or its 'not recorded' note, escaping, diff marks,
wins and losses, spend, method panels, plotly.js inlined once, no external resources."""

from __future__ import annotations

import html
import re
import shutil
import sys
from pathlib import Path

import pytest
from tests.report.conftest import FIXTURES, RUNS

from prompthone.errors import ConfigError
from prompthone.report import INSTALL_HINT, RunData, write_report

SECTIONS = ("scores", "lineage", "diff", "examples", "spend", "config")
PANELS = {"apo": "APO: textual gradients and the beam", "gepa": "GEPA: reflections, merges and Pareto-set evaluations",
          "greater": "GREATER: token choices per position", "mipro": "MIPRO: instructions × demo sets"}


def section(page: str, name: str) -> str:
    found = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', page, re.S)
    assert found, f"no section {name!r}"
    return found.group(1)


def visible(fragment: str) -> str:
    """The text a reader sees: no tags, entities decoded, whitespace collapsed (none before punctuation)."""
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
    return re.sub(r" ([,.;:)])", r"\1", text)


def table_rows(fragment: str, css_class: str) -> list[str]:
    """The body rows of every table of `css_class`, in order."""
    bodies = re.findall(rf'<table class="{css_class}">.*?<tbody>(.*?)</tbody>', fragment, re.S)
    assert bodies, f"no table {css_class!r}"
    return [row for body in bodies for row in re.findall(r"<tr[ >].*?</tr>", body, re.S)]


@pytest.mark.parametrize("name", FIXTURES)
def test_every_section_and_the_method_panel(name: str, report_html) -> None:
    page = report_html(name)
    for sid in SECTIONS:
        section(page, sid)
    if name in PANELS:
        assert visible(section(page, "method")).startswith(PANELS[name])
    else:  # APE records no events: no panel, and no link to one
        assert '<section id="method"' not in page and 'href="#method"' not in page
    assert page.count("* plotly.js v") == 1  # inlined once, with the first figure
    assert page.index("* plotly.js v") < page.index('class="plotly-graph-div"')
    markup = re.sub(r"<script\b.*?</script>", "", page, flags=re.S)  # plotly.js itself holds URLs in strings
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", markup), "an external resource"
    assert 'http-equiv="Content-Security-Policy"' in page


def test_summary_line(report_html) -> None:
    line = visible(re.search(r'<p class="summary-line".*?</p>', report_html("apo"), re.S).group(0))
    assert line == ("apo on gen:sentiment_templates · model llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf · "
                    "dev 0.500 → 0.750 · test 0.500 → 0.750 · 36 calls (32 new, 5,436 tokens) · finished")
    mipro = visible(re.search(r'<p class="summary-line".*?</p>', report_html("mipro"), re.S).group(0))
    assert mipro.endswith("· finished (stopped: budget)")


def test_user_text_is_escaped_everywhere(report_html) -> None:
    apo, gepa, greater = report_html("apo"), report_html("gepa"), report_html("greater")
    # the candidate table, the APO panel and the figures' hover text all carry the injected instruction
    assert "<script>alert(1)</script>" not in apo
    assert apo.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    assert "Friendly staff &amp; &lt;b&gt;fast&lt;/b&gt; service." in section(apo, "examples")
    assert "<img src=x" not in gepa and "&lt;img src=x onerror=alert(2)&gt;" in section(gepa, "method")
    assert "<b>bold</b>" not in greater and "␣&lt;b&gt;bold&lt;/b&gt;" in section(greater, "method")
    # in figures, escaped text travels as JSON with '<' written \u003c: it can never close the script tag
    assert "&lt;script&gt;alert(1)&lt;\\u002fscript&gt;" in apo or "&lt;script&gt;alert(1)&lt;/script&gt;" in apo


def test_diff_marks_the_changed_words(report_html) -> None:
    diff = section(report_html("apo"), "diff")
    assert ('<div class="text diff">Classify the sentiment of the <del>review.</del>'
            "<ins>review; treat sarcasm as negative.</ins></div>") in diff
    assert "System message <span class=\"muted\">(unchanged)</span>" in diff
    gepa = section(report_html("gepa"), "diff")
    assert "<ins>You are a careful annotator.</ins>" in gepa  # the system message the merge brought in
    mipro = section(report_html("mipro"), "diff")
    assert len(re.findall(r'<tr class="demo-added">', mipro)) == 2
    greater = visible(section(report_html("greater"), "diff"))
    assert "instruction position before after" in greater and "reasoning tokens 0 256" in greater


def test_wins_and_losses_counts_and_rows(report_html) -> None:
    examples = section(report_html("apo"), "examples")
    text = visible(examples)
    assert "On test Compared on 4 examples: 2 wins, 1 loss, 1 tie." in text
    assert "On dev Compared on 4 examples: 1 win, 0 losses, 3 ties." in text
    wins = table_rows(examples, "examples wins")
    assert len(wins) == 3  # 2 on test, 1 on dev
    assert [visible(r).split(" ")[:2] for r in wins] == [["test", "2"], ["test", "3"], ["dev", "2"]]
    assert "Not bad at all, I liked it." in visible(wins[0]) and "positive (1.000)" in visible(wins[0])
    assert len(table_rows(examples, "examples losses")) == 1
    for name in ("gepa", "greater", "running"):
        text = visible(section(report_html(name), "examples"))
        assert text.count("per-example scores: not recorded in this run") == 2
    mipro = visible(section(report_html("mipro"), "examples"))
    assert "the seed and the best prompt have no per-example 'test' scores recorded in this run" in mipro
    assert "Compared on 4 examples: 1 win, 0 losses, 3 ties." in mipro


def test_spend_and_prices(report_html) -> None:
    gepa = visible(section(report_html("gepa"), "spend"))
    assert "total 44 44 0 5,680 904 6,584 6,584 0.0127" in gepa and "no prices known" not in gepa
    apo = visible(section(report_html("apo"), "spend"))
    assert "search 20 16 4 3,100 420 3,520 2,816 —" in apo
    assert "no prices known for llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf." in apo
    assert "Calls by role role search final scoring final — 16 meta 4 — task 16 —" in apo


def test_lineage_and_scores_figures(report_html) -> None:
    gepa = report_html("gepa")
    lineage = section(gepa, "lineage")
    assert 'id="figure-2"' in lineage and '"name":"merge: second parent"' in lineage
    assert len(table_rows(lineage, "candidates")) == 4
    assert '"name":"method\'s best (pareto)"' in section(gepa, "scores")
    mipro = section(report_html("mipro"), "lineage")  # MIPRO builds every candidate from scratch
    assert "No parent → child links in this run" in visible(mipro) and "plotly-graph-div" not in mipro


def test_method_panels(report_html) -> None:
    apo = section(report_html("apo"), "method")
    assert visible(apo).count("Gradient on #0") == 2 and len(table_rows(apo, "apo-beams")) == 1
    gepa = section(report_html("gepa"), "method")
    assert "3 reflections (2 accepted, 1 rejected), 1 merge attempt (1 accepted); 39 metric calls in all." in \
        visible(gepa)
    assert len(table_rows(gepa, "gepa-reflections")) == 3 and len(table_rows(gepa, "gepa-pareto")) == 4
    assert visible(table_rows(gepa, "gepa-merges")[0]).startswith("3 #1 + #2 #0 first, second 3.000 / 3.000 5.000")
    greater = section(report_html("greater"), "method")
    assert "3 steps; 1 step changed a token." in visible(greater)
    assert [visible(r) for r in table_rows(greater, "greater-positions")] == ["0 0: Use", "1 1: ␣careful",
                                                                             "2 2: ␣reasoning"]
    assert "replaced ' logical' (loss 1.4000) by ' careful' (loss 1.2100)" in visible(greater)
    mipro = section(report_html("mipro"), "method")
    assert 'id="figure-2"' in mipro  # the trial map (the lineage has no figure)
    assert len(table_rows(mipro, "mipro-trials")) == 3 and len(table_rows(mipro, "mipro-demo-sets")) == 3
    assert "Short restaurant reviews labelled positive or negative." in mipro


def test_method_panel_without_events_says_not_recorded(tmp_path: Path) -> None:
    for name, note in (("gepa", "GEPA events (reflections, merges, Pareto-set evaluations): not recorded in this run."),
                       ("greater", "GREATER steps (candidate tokens, gradients, losses): not recorded in this run."),
                       ("mipro", "MIPRO events (demo sets, instructions, trials): not recorded in this run.")):
        shutil.copytree(RUNS / name, tmp_path / name)
        (tmp_path / name / "events.jsonl").unlink()
        page = write_report(RunData.from_run_dir(tmp_path / name)).read_text(encoding="utf-8")
        assert visible(section(page, "method")).endswith(note)


def test_running_run_has_a_banner_and_the_current_best(report_html) -> None:
    page = report_html("running")
    assert "This run is running and has no final result: “best” below is the method's current best by " \
           "'dev_sample'." in visible(page)
    assert "Seed #0 against best #1" in visible(section(page, "diff"))


def test_default_output_path_and_a_run_without_directory(tmp_path: Path) -> None:
    shutil.copytree(RUNS / "apo", tmp_path / "apo")
    run = RunData.from_run_dir(tmp_path / "apo")
    assert write_report(run) == tmp_path / "apo" / "report.html"
    with pytest.raises(ConfigError, match="pass out="):
        write_report(RunData(run_id="x", status="finished", config={}, candidates={}))


def test_missing_plotly_is_one_clear_error(run_data, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ConfigError) as info:
        write_report(run_data("apo"), tmp_path / "r.html")
    assert str(info.value) == INSTALL_HINT
    assert INSTALL_HINT == "prompthone report needs the report extra: pip install 'prompthone[report]'"
    assert not (tmp_path / "r.html").exists()
