"""The report files: `report.md`, `report.csv`, `report.json` and, for a two-key sweep,
`heatmap.png`, written into the directory the records came from or `--out`."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from sdaanet.errors import one_line
from sdaanet.io import atomic_open, atomic_write
from sdaanet.reporting.cells import Table
from sdaanet.reporting.collect import ReportError, load_failures, load_records
from sdaanet.reporting.heatmap import HEATMAP, heatmap_means, write_heatmap
from sdaanet.reporting.render import csv_rows, sources_md, to_markdown
from sdaanet.reporting.rows import build_table

FILES = ("report.md", "report.csv", "report.json")
# what marks a directory sdaanet made: a run's, a sweep's or table's (basic and optuna
# sweepers), or an earlier report's; only into such a one the report goes without --out
MADE = (".hydra", "multirun.yaml", "optimization_results.yaml", *FILES)


def _default_out(paths: Sequence[Path]) -> Path:
    """The directory of a record file given alone; else the one directory given, or the paths'
    common parent, if it is one sdaanet made (`MADE`); else `ReportError`: it takes `--out`."""
    if len(paths) == 1 and paths[0].is_file():
        return paths[0].parent
    folders = [p if p.is_dir() else p.parent for p in paths]
    out = Path(os.path.commonpath([os.path.abspath(f) for f in folders]))
    if not any((out / name).exists() for name in MADE):
        raise ReportError(
            f"{out}: not a run, sweep or table directory (it holds no .hydra/, multirun.yaml or "
            "earlier report), so the report is not written into it: pass --out DIR, or the run, "
            "sweep or table directory itself"
        )
    return out


def report(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> tuple[Table, list[Path]]:
    """Read the records under `paths`, write `report.md`, `report.csv`, `report.json` (and
    `heatmap.png` for a two-key sweep whose rows have means over the same folds) into `out_dir`
    (default: see `_default_out`); returns the table and the files written."""
    paths = [Path(p) for p in paths]
    table = build_table(load_records(paths), load_failures(paths))
    out = Path(out_dir) if out_dir is not None else _default_out(paths)
    md, csv_path, json_path = (out / name for name in FILES)
    try:
        atomic_write(md, f"# Evaluation report\n\n{to_markdown(table)}\n{sources_md(table)}")
        with atomic_open(csv_path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(csv_rows(table))
        atomic_write(json_path, json.dumps(asdict(table), indent=2, ensure_ascii=False) + "\n")
        written = [md, csv_path, json_path]
        if heatmap_means(table) is not None:
            written.append(write_heatmap(table, out / HEATMAP))
    except OSError as exc:
        raise ReportError(f"cannot write the report into {out}: {one_line(exc)}") from None
    return table, written


def print_report(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> Table:
    """`report`, then print the table and a last line naming the files written."""
    table, written = report(paths, out_dir)
    print(to_markdown(table), end="")
    print(f"wrote {', '.join(map(str, written))}")
    return table
