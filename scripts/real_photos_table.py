"""Regenerate the tables of docs/real-photos.md from the records committed under docs/real-photos/
(`make real-photos` ends with it): each trained cell's `metrics.json` (an evaluation record) and
the references' `references-fold<k>.json` (`python -m sdaanet.references`)."""

from __future__ import annotations

import json
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
RECORDS = DOCS / "real-photos"
PAGE = DOCS / "real-photos.md"
FOLDS = (0, 1, 2)
MAIN = [  # (row, where its numbers are)
    ("SD-AANet, trained with the recipe", "table4_sdaanet"),
    ("SD-AANet, untrained (same initialisation)", "untrained"),
    ("prototype baseline, training-free", "prototype"),
    ("PFENet baseline (`model=pfenet`), trained", "table4_baseline"),
]
TABLE4 = [  # (Table IV row, experiment, the paper's PASCAL-5i 1-shot mean class-mIoU)
    ("Baseline", "table4_baseline", 60.4),
    ("Baseline + SAAM", "table4_saam", 61.6),
    ("Baseline + SDPM", "table4_sdpm", 62.0),
    ("SD-AANet", "table4_sdaanet", 62.9),
]


def summary(source: str, fold: int) -> dict | None:
    """The {class_miou, fbiou} summary (mean/std over seeds) of a row in a fold, if recorded."""
    if source in ("untrained", "prototype"):
        path = RECORDS / f"references-fold{fold}.json"
        return json.loads(path.read_text())[source]["summary"] if path.is_file() else None
    path = RECORDS / "table4" / source / f"fold{fold}" / "metrics.json"
    return json.loads(path.read_text())["summary"] if path.is_file() else None


def cell(s: dict | None, key: str) -> str:
    if s is None:
        return "not run yet"
    return f"{100 * s[key]['mean']:.1f} ± {100 * s[key]['std']:.1f}"


def mean_of_folds(summaries: dict[int, dict | None], key: str) -> str:
    done = {f: s for f, s in summaries.items() if s is not None}
    if len(done) < 2:
        return "-"
    label = "" if len(done) == len(FOLDS) else f" (folds {','.join(map(str, done))})"
    return f"{100 * statistics.fmean(s[key]['mean'] for s in done.values()):.1f}{label}"


def table(rows: list[tuple[str, str]], key: str, extra: dict[str, str] | None = None) -> str:
    head = ["row", *(f"fold {f}" for f in FOLDS), "mean", *(extra and ["paper (PASCAL-5i)"] or [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, source in rows:
        summaries = {f: summary(source, f) for f in FOLDS}
        cells = [cell(s, key) for s in summaries.values()] + [mean_of_folds(summaries, key)]
        cells += [extra[source]] if extra else []
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def wall_minutes(source: str, fold: int) -> str:
    """Minutes from the cell's first log line to its evaluation record (training + 5 seeds)."""
    cell_dir = RECORDS / "table4" / source / f"fold{fold}"
    logs = sorted(cell_dir.glob("*.log"))
    if not logs or not (cell_dir / "metrics.json").is_file():
        return "-"
    first = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", logs[0].read_text())
    if first is None:
        return "-"
    start = datetime.fromisoformat(first.group(1) + "+00:00")
    end = datetime.fromisoformat(
        json.loads((cell_dir / "metrics.json").read_text())["evaluated_at"]
    )
    return f"{(end - start).total_seconds() / 60:.1f}"


def render() -> str:
    paper = {source: f"{value:.1f}" for _, source, value in TABLE4}
    t4 = [(name, source) for name, source, _ in TABLE4]
    return "\n\n".join([
        "**Novel-class FB-IoU** (%, mean ± std over 5 evaluation seeds of 200 episodes):",
        table(MAIN, "fbiou"),
        "**Novel-class class-mIoU** (%, same episodes):",
        table(MAIN, "class_miou"),
        "**Table IV at this scale**: class-mIoU (%) beside the paper's PASCAL-5i 1-shot mean "
        "(ResNet-50, 473 px, 200 epochs: a scale and dataset apart, for the ordering only):",
        table(t4, "class_miou", paper),
        "FB-IoU (%) of the same cells:",
        table(t4, "fbiou"),
        "Wall time of each trained cell (minutes: 300 training steps and the 5-seed evaluation):",
        "\n".join(["| row | " + " | ".join(f"fold {f}" for f in FOLDS) + " |",
                   "|" + "---|" * (len(FOLDS) + 1)]
                  + [f"| {name} | " + " | ".join(wall_minutes(src, f) for f in FOLDS) + " |"
                     for name, src in t4]),
    ])  # fmt: skip


def main() -> int:
    begin, end = "<!-- real-photos-table -->", "<!-- /real-photos-table -->"
    text = PAGE.read_text()
    if begin not in text or end not in text:
        print(f"error: {PAGE} has no {begin} ... {end} block", file=sys.stderr)
        return 2
    head, rest = text.split(begin, 1)
    PAGE.write_text(f"{head}{begin}\n{render()}\n{end}{rest.split(end, 1)[1]}")
    print(f"wrote the tables of {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
