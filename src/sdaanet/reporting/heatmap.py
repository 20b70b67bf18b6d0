"""The heatmap of a two-key sweep (`heatmap.png`): the rows' class-mIoU means over the folds,
one key down, the other across."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdaanet.config import PLUMBING_ONLY
from sdaanet.io import atomic_write
from sdaanet.reporting.cells import Table
from sdaanet.reporting.rows import value_order

HEATMAP = "heatmap.png"


def heatmap_means(table: Table) -> tuple[list[float], str] | None:
    """The rows' class-mIoU means and what they are over (`mean over folds`, `mean over folds 0,
    1 of 4`), for a two-key sweep whose rows all have a mean over the same folds; else None."""
    means, over = [], set()
    for row in table.rows:
        if row.mean is not None:
            means.append(row.mean.mean)
            over.add("folds")
        elif row.partial is not None:
            means.append(row.partial.class_miou.mean)
            over.add(row.partial.label[1:-1])
        else:
            return None
    return (means, f"mean over {over.pop()}") if len(table.keys) == 2 and len(over) == 1 else None


def write_heatmap(table: Table, path: Path) -> Path:
    """`path` (PNG): the mean over folds of class-mIoU (%) of a two-key sweep (each row's partial
    mean, titled with its folds, where the rows lack the same folds), rows = values of the first
    key, columns = the second's, numeric-sorted; titled as a plumbing-only run where one is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = heatmap_means(table)
    if means is None:
        raise ValueError(
            "a heatmap needs a two-key sweep whose rows have means over the same folds"
        )
    first, second = table.keys
    ys = sorted({r.overrides.get(first) for r in table.rows}, key=value_order)
    xs = sorted({r.overrides.get(second) for r in table.rows}, key=value_order)
    grid = np.full((len(ys), len(xs)), np.nan)  # combinations without a row stay blank
    for row, mean in zip(table.rows, means[0], strict=True):
        grid[ys.index(row.overrides.get(first)), xs.index(row.overrides.get(second))] = mean
    fig = Figure(figsize=(2.5 + 1.1 * len(xs), 1.8 + 0.7 * len(ys)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="class-mIoU (%)")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(second)
    ax.set_ylabel(first)
    ax.set_title(f"class-mIoU (%), {means[1]}")
    if any(r.plumbing_only for r in table.rows):
        fig.suptitle(PLUMBING_ONLY, color="red", fontweight="bold")
    middle = np.nanmean(grid)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "black" if value >= middle else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=colour)
    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
