"""`sdaanet-table I [overrides...]` (`make table TABLE=I ARGS=...`): one paper table, end to end.

Every cell (row x fold) of the table is trained and evaluated as one Hydra multirun into
`logs/tables/<table>/<overrides>/<experiment>/fold<k>/`; rows that differ only at evaluation
(Table II's †, Table V's multi-scale) evaluate the checkpoint of the row they are trained as in a
second multirun. It ends with the `sdaanet-report` table of that directory. Running it again
skips every cell whose evaluation record exists, and a cell killed mid-training continues from
its `last.ckpt` (`resume=true`). The rows and the paper's numbers come from the `paper:` nodes of
`conf/experiment/` (`sdaanet.paper`).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sdaanet.cli import entry_point
from sdaanet.config import ROOT_DIR, hydra_quoted, plain_name
from sdaanet.errors import SdaanetError
from sdaanet.paper import TABLES, normalize_table, table_rows

CELL_DIR = "${hydra:runtime.choices.experiment}/fold${data.fold}"


class TableRunError(SdaanetError):
    """A multirun of `sdaanet-table` failed."""


def table_dir(table: str, overrides: Sequence[str]) -> Path:
    """`logs/tables/<table>/<overrides>` (`data-synthetic_debug-tiny`): one directory per table
    and set of overrides, so a quick `debug=tiny` pipeline never mixes with the full one."""
    slug = "_".join(o.replace("=", "-") for o in sorted(overrides)) or "default"
    return ROOT_DIR / "logs" / "tables" / table / plain_name(slug)


def commands(
    table: str, overrides: Sequence[str], root: Path, folds: Sequence[int]
) -> list[list[str]]:
    """The multirun command lines of the table: training cells, then evaluation-only cells."""
    rows = table_rows(table)
    trained_ckpt = hydra_quoted(f"{root}/${{paper.trained_as}}/fold${{data.fold}}")  # any root
    sweep = [f"data.fold={','.join(str(f) for f in folds)}",
             f"hydra.sweep.dir={hydra_quoted(str(root))}", f"hydra.sweep.subdir={CELL_DIR}",
             "resume=true"]  # fmt: skip
    trained = [r.experiment for r in rows if not r.trained_as]
    out = [
        [sys.executable, "-m", "sdaanet.train", "-m", f"experiment={','.join(trained)}",
         *sweep, "test=true", *overrides],
    ]  # fmt: skip
    eval_only = [r.experiment for r in rows if r.trained_as]
    if eval_only:
        out.append(
            [sys.executable, "-m", "sdaanet.eval", "-m", f"experiment={','.join(eval_only)}",
             *sweep, f"ckpt_path={trained_ckpt}", *overrides]
        )  # fmt: skip
    return out


def run_table(
    table: str, overrides: Sequence[str], root: Path | None = None, folds: Sequence[int] = ()
) -> Path:
    """Train and evaluate every cell of `table`, print its report; returns the table directory.
    The overrides are checked first, as `sdaanet-train`/`-eval` check them (`precheck`: every
    cell's configuration; the checkpoints of evaluation-only rows exist only later)."""
    from sdaanet.reporting.write import print_report
    from sdaanet.validate import precheck

    root = Path(root) if root else table_dir(table, overrides)
    folds = list(folds) or [0, 1, 2, 3]
    cmds = commands(table, overrides, root, folds)
    for cmd in cmds:  # [python, -m, sdaanet.<train|eval>, -m, ...]
        precheck(cmd[2].rsplit(".", 1)[1], cmd[3:], checkpoint=False)
    for cmd in cmds:
        print(f"+ {shlex.join(cmd)}", flush=True)  # a command line to copy and run
        if subprocess.run(cmd, check=False).returncode != 0:
            raise TableRunError(
                f"Table {table}: `{' '.join(cmd[1:4])} ...` failed (its log is above); fix the "
                f"cause and run the same command again: finished cells in {root} are kept"
            )
    print_report([root])
    return root


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """`sdaanet-table`: `error: <message>` and exit 2 on a bad input or a failed cell."""
    parser = argparse.ArgumentParser(
        prog="sdaanet-table",
        description="Train and evaluate every cell of one of the paper's tables, then report it.",
    )
    parser.add_argument("table", help=f"the paper's table: {', '.join(TABLES)}")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every cell")
    parser.add_argument("--dir", type=Path, help="output directory (default logs/tables/...)")
    parser.add_argument(
        "--folds", default="0,1,2,3", help="comma-separated folds (default 0,1,2,3)"
    )
    args = parser.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    run_table(normalize_table(args.table), args.overrides, args.dir, folds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
