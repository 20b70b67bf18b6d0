"""What a report table holds: rows (configurations) of cells (folds), the protocols they cite,
the failed jobs and the record files read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sdaanet.reporting.stats import Stat


def folds_text(folds: Sequence[int]) -> str:
    """`fold 1`, `folds 0, 1`."""
    return f"fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))}"


@dataclass
class PartialMean:
    """The means over the folds a row has, where it lacks some: labelled, never the full mean."""

    folds: list[int]
    of: int  # how many folds the table has
    class_miou: Stat
    fbiou: Stat

    @property
    def label(self) -> str:
        return f"({folds_text(self.folds)} of {self.of})"


@dataclass
class Protocol:
    """The settings (`protocols.SIGNATURE`) the evaluations of a row share; rows cite its `id`."""

    id: str
    settings: dict[str, Any]
    text: str


@dataclass
class Cell:
    """One (row, fold): the scores of one evaluation, over its seeds (percent)."""

    fold: int
    class_miou: Stat
    fbiou: Stat
    per_seed: list[dict[str, float]]  # {"seed", "class_miou", "fbiou"}
    record: str  # the file the numbers come from
    evaluated_at: str
    records: int  # distinct evaluations found for this (row, fold); the latest is used
    protocol: str
    checkpoint_selected_on: str
    paper: float | None  # the paper's class-mIoU of this fold
    delta: float | None  # ours - paper, in points


@dataclass
class Failure:
    """A (row, fold) whose multirun job failed, from its `failed.json`."""

    fold: int
    reason: str
    error: str
    record: str  # the failed.json read
    failed_at: str


@dataclass
class Row:
    """One configuration over the folds. `mean`/`fbiou` are over the folds, None when a fold is
    missing or failed or the folds' protocols differ; `partial`: the means over the folds it has
    when a fold is missing or failed. A plumbing-only row has no `delta`."""

    label: str
    overrides: dict[str, str]
    cells: dict[int, Cell]
    missing: list[int]
    failed: dict[int, Failure]  # folds whose job failed (and no evaluation of them was found)
    mean: Stat | None
    fbiou: Stat | None
    protocols: list[str]
    paper: dict[str, Any] | None  # the records' "paper" entry
    paper_mean: float | None
    delta: float | None
    paper_mismatch: str | None  # e.g. "synthetic ≠ pascal": the paper measured something else
    notes: list[str]
    partial: PartialMean | None
    plumbing_only: bool  # a record of the row is plumbing-only (`plumbing_only`, debug=tiny)


@dataclass
class Source:
    """A record file read, and where its evaluation went."""

    path: str
    copies: list[str]  # files holding the same evaluation (dropped)
    row: str
    fold: int
    used: bool  # False: a later evaluation of the same (row, fold) is shown


@dataclass
class Table:
    """Rows (configurations) by folds; `keys`: the override keys that differ between rows."""

    rows: list[Row]
    folds: list[int]
    protocols: list[Protocol]
    keys: list[str]
    sources: list[Source]
