"""The study's heat map: dev score per opener × closer, one panel per task line and answering mode (direct / CoT).

matplotlib is optional (`pip install 'prompthone[plot]'`): without it the study runs and says how to get the plot.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from prompthone.grid_study.evaluate import HandRow
from prompthone.grid_study.grid import GridSpec, short

log = logging.getLogger(__name__)

INSTALL_HINT = "heat map skipped: matplotlib is not installed (pip install 'prompthone[plot]')"


def plot_heatmap(rows: Sequence[HandRow], grid: GridSpec, path: Path, *, title: str) -> str | None:
    """Write the heat map PNG to `path`; returns None, or why no plot was written (matplotlib missing)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.warning(INSTALL_HINT)
        return INSTALL_HINT
    modes = sorted({r.cot for r in rows})
    by_key = {(r.opener, r.task_line, r.closer, r.cot): r for r in rows}
    # Colour only what compares: scores on the whole dev split. Pruned variants are grey, their slice score in ().
    scores = [r.dev_score for r in rows if r.pruned_at is None and math.isfinite(r.dev_score)]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05
    ncols, nrows = len(grid.task_lines), len(modes)
    fig = Figure(figsize=(1.2 + 1.5 * len(grid.closers) * ncols, 1.0 + 0.55 * len(grid.openers) * nrows + 0.8),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    image = None
    for i, cot in enumerate(modes):
        for j, task_line in enumerate(grid.task_lines):
            ax = axes[i][j]
            cells = [[by_key.get((o, task_line, c, cot)) for c in grid.closers] for o in grid.openers]
            matrix = [[cell.dev_score if cell is not None and cell.pruned_at is None else math.nan for cell in line]
                      for line in cells]
            ax.set_facecolor("#d9d9d9")
            image = ax.imshow(matrix, vmin=low, vmax=high, cmap="viridis", aspect="auto")
            for y, line in enumerate(cells):
                for x, cell in enumerate(line):
                    if cell is None:
                        continue
                    text = f"{cell.dev_score:.2f}" if cell.pruned_at is None else f"({cell.dev_score:.2f})"
                    bright = cell.pruned_at is not None or (cell.dev_score - low) / (high - low) > 0.6
                    ax.text(x, y, text, ha="center", va="center", fontsize=8, color="black" if bright else "white")
            ax.set_title(f"{short(task_line, 32)}\n{'CoT' if cot else 'direct'}", fontsize=9)
            ax.set_xticks(range(len(grid.closers)), [short(c, 26) for c in grid.closers], rotation=35,
                          ha="right", fontsize=7)
            ax.set_yticks(range(len(grid.openers)), [short(o, 30) for o in grid.openers], fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="dev score")
    pruned = any(r.pruned_at is not None for r in rows)
    fig.suptitle(title + ("\ngrey (score) = pruned by successive halving: its score on a dev slice, not coloured"
                          if pruned else ""),
                 fontsize=10)
    fig.supxlabel("closer", fontsize=9)
    fig.supylabel("opener", fontsize=9)
    fig.savefig(path, dpi=110)
    return None
