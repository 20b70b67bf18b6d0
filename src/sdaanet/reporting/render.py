"""The report table as text: Markdown (the table printed and `report.md`, with the records
read) and the rows of `report.csv`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sdaanet.config import PLUMBING_ONLY
from sdaanet.reporting.cells import Row, Table, folds_text


def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _gaps(row: Row) -> list[str]:
    """`failed fold 1`, `missing folds 2, 3`: the folds without an evaluation."""
    gaps = [f"failed {folds_text(sorted(row.failed))}"] if row.failed else []
    return gaps + ([f"missing {folds_text(row.missing)}"] if row.missing else [])


def _mean_text(row: Row, metric: str = "class_miou") -> str:
    """The row's mean over the folds, its labelled partial mean (`36.00 ± 1.00 (folds 0, 1 of
    4)`), the gaps of a row without either, `mixed protocol`, or "" (FB-IoU of such a row)."""
    full = row.mean if metric == "class_miou" else row.fbiou
    if full is not None:
        return str(full)
    if row.partial is not None:
        return f"{getattr(row.partial, metric)} {row.partial.label}"
    if metric != "class_miou":
        return ""
    return "; ".join(_gaps(row)) or "mixed protocol"


def _fold_text(row: Row, fold: int, metric: str) -> str:
    """A fold cell: the metric's Stat (`*` where several evaluations were found), `failed`, or
    `—` (missing)."""
    if fold in row.failed:
        return "failed"
    cell = row.cells.get(fold)
    if cell is None:
        return "—"
    return f"{getattr(cell, metric)}{' *' if cell.records > 1 and metric == 'class_miou' else ''}"


def _failures_md(table: Table) -> list[str]:
    """One line per failed cell: the row, the fold, the reason and the failure record."""
    return [
        f"- {row.label}, fold {f.fold}: {f.error}: {f.reason} (`{f.record}`)"
        for row in table.rows
        for f in row.failed.values()
    ]


def _delta_text(row: Row) -> str:
    if row.plumbing_only:
        return "none: plumbing-only"
    delta = "" if row.delta is None else f"{row.delta:+.2f}"
    return f"{delta} ({row.paper_mismatch})".strip() if row.paper_mismatch else delta


def _plumbing_banner(table: Table) -> list[str]:
    """The bold line above a table with plumbing-only rows (none without)."""
    plumbing = [r for r in table.rows if r.plumbing_only]
    if not plumbing:
        return []
    which = "every row" if len(plumbing) == len(table.rows) else "rows noted so"
    return [
        f"**{PLUMBING_ONLY[0].upper()}{PLUMBING_ONLY[1:]}** ({which}: plumbing_only=true, "
        "e.g. debug=tiny): these numbers show that the pipeline runs, not what the method "
        "does, and are not compared with the paper.",
        "",
    ]


def _class_miou_table(table: Table, with_paper: bool, several: bool) -> list[str]:
    """The main table: per fold class-mIoU, the means, the paper's, protocols and notes."""
    folds = [f"fold {f}" for f in table.folds]
    head = ["configuration", *folds, "mean", "FB-IoU", *(["paper", "Δ"] if with_paper else [])]
    head += [*(["protocol"] if several else []), "notes"]
    lines = [_md_line(head), _md_line(["---"] * len(head))]
    for row in table.rows:
        cells = [row.label, *(_fold_text(row, f, "class_miou") for f in table.folds)]
        cells += [_mean_text(row), _mean_text(row, "fbiou")]
        if with_paper:
            cells += ["" if row.paper_mean is None else f"{row.paper_mean:.1f}", _delta_text(row)]
        cells += [", ".join(row.protocols)] if several else []
        notes = row.notes + (_gaps(row) if row.partial else [])
        lines.append(_md_line([*cells, "; ".join(notes)]))
    return lines


def _legend(table: Table, with_paper: bool, several: bool) -> list[str]:
    """What the table's numbers and marks mean, its failed cells and its protocols."""
    lines = [
        "",
        "Fold cells: class-mIoU (%), mean ± sample std over the seeds of one evaluation. mean: "
        "over the folds (± over the seeds of the per-seed fold mean, where every fold has the "
        "same seeds); FB-IoU: mean over the folds (%).",
    ]
    if partial := next((r.partial for r in table.rows if r.partial), None):
        lines.append(
            f"{partial.label} after a mean: the row lacks folds; the mean over the folds it has, "
            f"not over all {partial.of}{' (no Δ)' if with_paper else ''}."
        )
    if any(c.records > 1 for r in table.rows for c in r.cells.values()):
        lines.append("\\* several evaluations of this cell were found: the latest is shown.")
    if with_paper:
        lines.append("paper: the paper's class-mIoU, mean over folds; Δ: ours − paper (points).")
    if failures := _failures_md(table):
        lines += ["", "failed: the job of this cell failed (its failed.json), no evaluation:"]
        lines += failures
    if several:
        lines += ["", "Protocols:", *(f"- {p.id}: {p.text}" for p in table.protocols)]
    elif table.protocols:
        lines += ["", f"Protocol: {table.protocols[0].text}"]
    return lines


def _fbiou_table(table: Table) -> list[str]:
    """FB-IoU per fold, one line per row."""
    head = ["configuration", *(f"fold {f}" for f in table.folds)]
    lines = ["", "FB-IoU (%) per fold:", "", _md_line(head), _md_line(["---"] * len(head))]
    for row in table.rows:
        lines.append(_md_line([row.label, *(_fold_text(row, f, "fbiou") for f in table.folds)]))
    return lines


def to_markdown(table: Table) -> str:
    """The table in Markdown (class-mIoU, then FB-IoU per fold), its marks explained and one
    line per protocol under it."""
    with_paper = any(r.paper for r in table.rows)
    several = len(table.protocols) > 1
    lines = _plumbing_banner(table) + _class_miou_table(table, with_paper, several)
    lines += _legend(table, with_paper, several) + _fbiou_table(table)
    return "\n".join(lines) + "\n"


def sources_md(table: Table) -> str:
    lines = [f"## Records read ({len(table.sources)})", ""]
    for s in table.sources:
        line = f"- `{s.path}`: {s.row}, fold {s.fold}"
        line += "" if s.used else " (not used: a later evaluation of this cell is shown)"
        line += f"; same evaluation in {', '.join(f'`{c}`' for c in s.copies)}" if s.copies else ""
        lines.append(line)
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)


def csv_rows(table: Table) -> list[list[Any]]:
    """A header and one line per row: per fold mean/std/FB-IoU, the row's means, the paper's, the
    partial means (`partial_folds`: `0 1 of 4`) and whether the row is plumbing-only."""
    head = ["label"]
    for f in table.folds:
        head += [f"fold{f}_{m}{x}" for m in ("class_miou", "fbiou") for x in ("", "_std")]
    head += ["mean", "std", "fbiou", "fbiou_std", "paper", "delta"]
    head += [k for f in table.folds for k in (f"paper_fold{f}", f"delta_fold{f}")]
    head += ["partial_mean", "partial_std", "partial_fbiou", "partial_fbiou_std", "partial_folds"]
    out: list[list[Any]] = [[*head, "protocol", "notes", "plumbing_only"]]
    for row in table.rows:
        line: list[Any] = [row.label]
        for f in table.folds:
            c = row.cells.get(f)
            stats = [] if c is None else [c.class_miou, c.fbiou]
            line += [_number(v) for st in stats for v in (st.mean, st.std)] or [""] * 4
        for stat in (row.mean, row.fbiou):
            line += ["", ""] if stat is None else [_number(stat.mean), _number(stat.std)]
        line += [_number(row.paper_mean), _number(row.delta)]
        for f in table.folds:
            c = row.cells.get(f)
            line += ["", ""] if c is None else [_number(c.paper), _number(c.delta)]
        part = row.partial
        for stat in (None, None) if part is None else (part.class_miou, part.fbiou):
            line += ["", ""] if stat is None else [_number(stat.mean), _number(stat.std)]
        line.append("" if part is None else f"{' '.join(map(str, part.folds))} of {part.of}")
        notes = [f"failed fold {f.fold}: {f.reason}" for f in row.failed.values()]
        notes += [f"missing {folds_text(row.missing)}"] if row.missing else []
        if row.paper_mismatch:
            notes.append(f"paper measured on {row.paper_mismatch}")
        plumbing = str(row.plumbing_only).lower()
        out.append([*line, " ".join(row.protocols), "; ".join(notes + row.notes), plumbing])
    return out
