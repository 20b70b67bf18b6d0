"""The paper-style table of a sweep: `sdaanet-report PATH [PATH ...] [--out DIR]`.

Reads every evaluation record (the JSON that `sdaanet-eval` and a training run with `test=true`
write: an object with "protocol", "summary" and "seeds") in the run folders under the given
paths (`metrics.json`, `eval/*.json`; up to `LAYOUT_DEPTH` folders down), drops exact
duplicates (a run's `metrics.json` and its copy in `<run>/eval/`), and makes one row per
configuration (labelled by the Hydra overrides that differ between the records) and one column
per fold: class-mIoU mean ± sample std over the seeds, in percent. A row's mean is the mean over
the folds; a row with a missing or failed fold gets instead a mean over the folds it has, labelled
`(folds 0, 1 of 4)`, and a row of mixed protocols none. Where the records carry the paper's
numbers, the paper's value and the difference are shown, except for a plumbing-only run
(`plumbing_only`, debug=tiny), whose every printout says "plumbing-only run: not a result". A
multirun job that failed (its `failed.json`, `sdaanet.sweep`) shows as a `failed` cell with its
one-line reason. Writes `report.md`, `report.csv`, `report.json` and, for a two-key sweep,
`heatmap.png`; see docs/report.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sdaanet.cli import entry_point
from sdaanet.reporting.collect import LAYOUT_DEPTH
from sdaanet.reporting.write import print_report


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """`sdaanet-report PATH [PATH ...] [--out DIR]`: print the table, write the report files."""
    parser = argparse.ArgumentParser(
        prog="sdaanet-report",
        description="Make the paper-style table (configurations x folds) of evaluation records.",
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH",
        help="a run, sweep or table directory (its metrics.json, eval/*.json and failed.json, "
        f"and those of its folders up to {LAYOUT_DEPTH} deep; nothing else is read) or an "
        "evaluation record (.json)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None,
        help="where to write report.md/.csv/.json (default: a record file's directory, or the "
        "directory given (the paths' common parent) if it is a run, sweep or table directory: "
        "it holds .hydra/, multirun.yaml or an earlier report; any other directory, such as "
        "/tmp, is refused without --out and nothing is written)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    print_report(args.paths, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
