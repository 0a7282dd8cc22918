"""One self-contained HTML file per run: sections built from `RunData` in page order, drawn by jinja2 templates.

Every text from the run goes through jinja2's autoescaping (prompts and examples may hold HTML or injection
text); figures are plotly `<div>`s whose hover text is escaped in `figures`. plotly.js is inlined once, so the
file opens offline and makes no requests.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from prompthone._version import __version__
from prompthone.errors import ConfigError
from prompthone.report.data import RunData
from prompthone.report.diff import prompt_diff
from prompthone.report.figures import FigureHtml, lineage_figure, plotly_go, scores_figure
from prompthone.report.methods import method_panel
from prompthone.report.scores import COMPARED_KEYS, NOT_RECORDED, compare_examples
from prompthone.report.summary import parents, score, score_keys, spend, summary

REPORT_NAME = "report.html"
TOP_CANDIDATES = 300


def environment() -> Environment:
    env = Environment(loader=PackageLoader("prompthone.report", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(score=fmt_score, delta=fmt_delta, num=fmt_num, tok=fmt_token, seconds=fmt_seconds,
                       pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str), count=fmt_count)
    return env


def fmt_score(value: Any) -> str:
    v = score(value)
    return "—" if v is None else f"{v:.3f}"


def fmt_delta(new: Any, old: Any) -> str:
    a, b = score(new), score(old)
    if a is None or b is None:
        return ""
    return f"{a - b:+.3f}"


def fmt_num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "—" if value is None else str(value)


def fmt_count(n: int, word: str) -> str:
    """'1 win', '2 wins', '0 losses'."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}{'es' if word.endswith('s') else 's'}"


def fmt_token(value: Any) -> str:
    """A token as it is, with its spaces and newlines made visible."""
    return str(value).replace(" ", "␣").replace("\n", "⏎") if value is not None else "∅"


def fmt_seconds(value: Any) -> str:
    v = score(value)
    if v is None:
        return "—"
    return f"{v:.1f} s" if v < 120 else f"{math.floor(v / 60)} min {v % 60:.0f} s"


def build_context(run: RunData) -> dict[str, Any]:
    """Every section's values, in page order (the figures are converted to HTML in that order)."""
    figure_html = FigureHtml()
    info = summary(run)
    seed, best, rank = info["seed_id"], info["best"], info["rank_key"]
    keys = score_keys(run)
    colour_key = rank if rank in keys else ("dev" if "dev" in keys else (keys[0] if keys else None))
    scores_fig = scores_figure(run, seed, best.id, rank)
    lineage_fig = lineage_figure(run, colour_key, seed, best.id)
    seed_prompt, best_prompt = _prompts(run, seed, best.id)
    return {
        "version": __version__, "info": info, "best": best, "keys": keys, "colour_key": colour_key,
        "scores_figure": figure_html(scores_fig) if scores_fig is not None else None,
        "lineage_figure": figure_html(lineage_fig) if lineage_fig is not None else None,
        "top": _top_candidates(run, colour_key), "seed_prompt": seed_prompt, "best_prompt": best_prompt,
        "diff": prompt_diff(seed_prompt, best_prompt) if seed_prompt and best_prompt else None,
        "comparisons": [compare_examples(run, seed, best.id, key) for key in COMPARED_KEYS],
        "examples_recorded": bool(run.examples), "spend": spend(run),
        "panel": method_panel(run, info["method"], figure_html), "not_recorded": NOT_RECORDED,
        "config": run.config, "n_events": len(run.events),
    }


def _prompts(run: RunData, seed: int | None, best: int | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    result = run.result or {}

    def prompt_of(cid: int | None, field: str) -> dict[str, Any] | None:
        if isinstance(result.get(field), dict):
            found: dict[str, Any] = result[field]
            return found
        return (run.candidates.get(cid) or {}).get("prompt") if cid is not None else None

    return prompt_of(seed, "seed_prompt"), prompt_of(best, "best_prompt")


def _top_candidates(run: RunData, key: str | None) -> list[dict[str, Any]]:
    """The best candidates by `key` (unscored ones last), with their parents, for the table under the tree."""
    def rank(item: tuple[int, dict[str, Any]]) -> tuple[float, int]:
        value = score(item[1].get("scores", {}).get(key)) if key else None
        return (-value if value is not None else math.inf, item[0])

    ranked = sorted(run.candidates.items(), key=rank)[:TOP_CANDIDATES]
    return [{"id": cid, "parents": parents(c), **c} for cid, c in ranked]


def render_report(run: RunData) -> str:
    """The report as one HTML document."""
    plotly_go()  # fail first, with the install hint, when the extra is missing
    return environment().get_template("report.html.j2").render(**build_context(run))


def write_report(run: RunData, out: str | Path | None = None) -> Path:
    """Write the run's report (default: `report.html` in the run directory) and return its path."""
    if out is None:
        if run.path is None:
            raise ConfigError(f"run {run.run_id} has no directory to write its report into: pass out=")
        out = run.path / REPORT_NAME
    target = Path(out)
    text = render_report(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
