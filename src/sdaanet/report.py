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
import csv
import json
import os
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sdaanet.cli import entry_point
from sdaanet.config import PLUMBING_ONLY
from sdaanet.errors import SdaanetError, one_line
from sdaanet.io import atomic_open, atomic_write
from sdaanet.layout import eval_dir, metrics_file
from sdaanet.records import RecordError, mean_std, parse_override, read_record
from sdaanet.sweep import FAILURE_FILE

IGNORED_KEYS = {"data.fold", "ckpt_path", "resume", "test", "test_ckpt"}
IGNORED_PREFIXES = ("paths.", "hydra.", "hydra/")
# what two evaluations must share to be averaged over folds ("seeds": how many)
SIGNATURE = (
    "dataset", "shot", "ways", "episodes", "seeds", "input_size", "label_mode", "multiscale",
    "preset", "kshot",
)  # fmt: skip
EXPECTED = "evaluation records (JSON with protocol/summary/seeds)"
HINT = "train with test=true or run sdaanet-eval"
LAYOUT_DEPTH = 2  # <run>/metrics.json, <sweep>/<job>/..., <table>/<experiment>/fold<k>/...
WHERE = f"in metrics.json or eval/*.json of this directory or of its folders {LAYOUT_DEPTH} deep"
PASS = "pass a run, sweep or table directory"
FILES = ("report.md", "report.csv", "report.json")
# what marks a directory sdaanet made: a run's, a sweep's or table's (basic and optuna
# sweepers), or an earlier report's; only into such a one the report goes without --out
MADE = (".hydra", "multirun.yaml", "optimization_results.yaml", *FILES)
METRICS = ("class_miou", "fbiou")
HEATMAP = "heatmap.png"


class ReportError(SdaanetError):
    """The report cannot be made or written."""


class NoRecordsError(ReportError, FileNotFoundError):
    """A path given to `sdaanet-report` is missing or holds no evaluation record."""


# ------------------------------------------------------------------------------- the table
@dataclass
class Stat:
    """A mean and its sample std (None where it is not defined), in percent."""

    mean: float
    std: float | None

    def __str__(self) -> str:
        return f"{self.mean:.2f}" + ("" if self.std is None else f" ± {self.std:.2f}")


@dataclass
class PartialMean:
    """The means over the folds a row has, where it lacks some: labelled, never the full mean."""

    folds: list[int]
    of: int  # how many folds the table has
    class_miou: Stat
    fbiou: Stat

    @property
    def label(self) -> str:
        return f"({_folds_text(self.folds)} of {self.of})"


@dataclass
class Protocol:
    """The settings (`SIGNATURE`) shared by the evaluations of a row; rows cite it by `id`."""

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


# ---------------------------------------------------------------------------------- reading
def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _read(file: Path) -> dict[str, Any] | None:
    """The record in `file`; None (with a warning if it is unreadable) if it holds none."""
    try:
        return read_record(file)
    except RecordError as exc:
        _warn(f"{exc}; skipped")
        return None


def _run_folders(path: Path) -> list[Path]:
    """`path` and the folders up to `LAYOUT_DEPTH` below it, where a run, a sweep's jobs and a
    table's cells keep their records; hidden folders and links are not entered, nor anything
    deeper (a directory such as /tmp is never searched through)."""
    found, level = [], [path]
    for _ in range(LAYOUT_DEPTH + 1):
        found += level
        level = [sub for folder in level for sub in _subfolders(folder)]
    return found


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(
            sub
            for sub in folder.iterdir()
            if sub.is_dir() and not sub.is_symlink() and not sub.name.startswith(".")
        )
    except OSError:  # unreadable
        return []


def _files(path: Path) -> list[Path]:
    """`path`, or the record files of the run folders under it (`metrics.json`, `eval/*.json`
    beside a checkpoint, a failed job's `failed.json`), shallowest first (`metrics.json` before
    `eval/`)."""
    if path.is_file():
        return [path]
    files = set()
    for folder in _run_folders(path):
        files.update(f for f in (metrics_file(folder), folder / FAILURE_FILE) if f.is_file())
        files.update(eval_dir(folder).glob("*.json"))
    return sorted(files, key=lambda f: (len(f.relative_to(path).parts), str(f)))


def _identity(record: dict[str, Any]) -> str:
    fields = ("checkpoint", "protocol", "seeds", "evaluated_at")
    return json.dumps([record.get(k) for k in fields], sort_keys=True)


def _keep(records: dict[str, dict[str, Any]], record: dict[str, Any], file: Path) -> None:
    """Add `record`, read from `file`, to `records` by identity, or note `file` as a copy."""
    identity = _identity(record)
    if identity in records:
        records[identity]["copies"].append(str(file))
    else:
        records[identity] = {**record, "source": str(file), "copies": []}


def load_records(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every evaluation record under `paths` (record files, or directories searched recursively),
    exact duplicates dropped. Each gets "source" (the file read) and "copies" (other files that
    hold the same evaluation). NoRecordsError names a path that is missing or holds none."""
    records: dict[str, dict[str, Any]] = {}
    is_record: dict[Path, bool] = {}  # by resolved file: each is read once
    for path in map(Path, paths):
        if not path.exists():
            raise NoRecordsError(
                f"{path}: no such file or directory; expected {EXPECTED} or a folder of them"
            )
        found = False
        for file in _files(path):
            key = file.resolve()
            if key not in is_record:
                record = _read(file)
                is_record[key] = record is not None
                if record is not None:
                    _keep(records, record, file)
            found = found or is_record[key] or file.name == FAILURE_FILE
        if not found:
            where = f"in this file; {HINT}" if path.is_file() else f"{WHERE}; {HINT}, or {PASS}"
            raise NoRecordsError(f"{path}: no {EXPECTED} {where}")
    return list(records.values())


def load_failures(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The failure records (`failed.json` of failed multirun jobs) under `paths`, each with
    "source"; an unreadable one is skipped with a warning."""
    failures = []
    for path in map(Path, paths):
        files = [path] if path.is_file() else [f / FAILURE_FILE for f in _run_folders(path)]
        for file in (f for f in files if f.name == FAILURE_FILE and f.is_file()):
            try:
                obj = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                _warn(f"{file}: unreadable JSON ({one_line(exc)}); skipped")
                continue
            if isinstance(obj, dict) and "reason" in obj:
                failures.append({**obj, "source": str(file)})
    return failures


# ------------------------------------------------------------------------------ the records
def _overrides(record: dict[str, Any]) -> dict[str, str]:
    """The record's `configuration.overrides` as key -> value, without the keys that do not make
    a configuration (the fold, checkpoint and resume options, paths, Hydra's own)."""
    out = {}
    for item in (record.get("configuration") or {}).get("overrides") or []:
        key, value = parse_override(str(item))
        if key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES):
            continue
        out[key] = "(deleted)" if value is None else value
    return out


def _experiment(records: Sequence[dict[str, Any]], overrides: dict[str, str]) -> str | None:
    """The experiment's name: from the overrides, else from any record's configuration."""
    named = [(r.get("configuration") or {}).get("experiment") for r in records]
    return overrides.get("experiment") or next((e for e in named if e), None)


def _fold(record: dict[str, Any]) -> int:
    """The fold of an evaluation record, or of a failure record."""
    fold = record["protocol"].get("fold") if "protocol" in record else record.get("fold")
    return int(fold or 0)


def _when(record: dict[str, Any]) -> datetime:
    """When the record was evaluated (its `evaluated_at`, else its file's time), in UTC."""
    try:
        when = datetime.fromisoformat(str(record.get("evaluated_at")))
    except ValueError:
        return datetime.fromtimestamp(Path(record["source"]).stat().st_mtime, timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _signature(record: dict[str, Any]) -> tuple[Any, ...]:
    p = record["protocol"]
    values = {k: p.get(k) for k in SIGNATURE}
    values["seeds"] = len(record["seeds"])
    values["multiscale"] = tuple(p["multiscale"]) if p.get("multiscale") else None
    return tuple(values[k] for k in SIGNATURE)


def _order(value: str | None) -> tuple[int, float, str]:
    """Sort key of an override value: unset first, then numbers by value, then text."""
    if value is None:
        return (0, 0.0, "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)


def _show(value: Any) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _folds_text(folds: Sequence[int]) -> str:
    return f"fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))}"


def _stat(values: Sequence[float]) -> Stat:
    """Mean and sample std (0 for one value)."""
    return Stat(*mean_std(values))


def _describe(settings: dict[str, Any]) -> str:
    s = settings
    scales = f"multi-scale {_show(s['multiscale'])}" if s["multiscale"] else "single scale"
    text = (
        f"{s['dataset']}, {s['shot']}-shot {s['ways']}-way, {s['episodes']} episodes x "
        f"{s['seeds']} seed{'s' if s['seeds'] != 1 else ''}, input {s['input_size']}, "
        f"label mode {s['label_mode']}, {scales}"
    )
    if s.get("kshot"):
        text += f", K-shot by {s['kshot']}"
    return text


def _protocol(record: dict[str, Any], registry: dict[tuple[Any, ...], Protocol]) -> Protocol:
    """The registered protocol of `record` (numbered P1, P2, ... as first met)."""
    signature = _signature(record)
    if signature not in registry:
        settings = dict(zip(SIGNATURE, signature, strict=True))
        registry[signature] = Protocol(f"P{len(registry) + 1}", settings, _describe(settings))
    return registry[signature]


def _mixed(signatures: dict[int, tuple[Any, ...]]) -> str | None:
    """`mixed protocol: episodes 40 (fold 1) vs 1000` where the folds' protocols differ."""
    parts = []
    for i, name in enumerate(SIGNATURE):
        folds_of: dict[Any, list[int]] = {}
        for fold, signature in sorted(signatures.items()):
            folds_of.setdefault(signature[i], []).append(fold)
        if len(folds_of) > 1:
            common = max(folds_of.items(), key=lambda item: len(item[1]))[0]
            others = [
                f"{name} {_show(v)} ({_folds_text(f)})" for v, f in folds_of.items() if v != common
            ]
            parts.append(f"{', '.join(others)} vs {_show(common)}")
    return f"mixed protocol: {'; '.join(parts)}" if parts else None


def _mismatch(paper: dict[str, Any], protocol: dict[str, Any]) -> str | None:
    """What the paper measured that these records do not (dataset, shot), or None."""
    parts = []
    if paper.get("dataset") not in (None, protocol.get("dataset")):
        parts.append(f"{protocol.get('dataset')} ≠ {paper['dataset']}")
    if paper.get("shot") not in (None, protocol.get("shot")):
        parts.append(f"{protocol.get('shot')}-shot ≠ {paper['shot']}-shot")
    return ", ".join(parts) or None


def _over_folds(cells: Sequence[Cell], metric: str) -> Stat:
    """Mean over folds of the fold means; its std is the sample std over seeds of the per-seed
    fold mean, defined only when every fold has the same seeds."""
    mean = statistics.fmean(getattr(c, metric).mean for c in cells)
    by_seed = [{e["seed"]: e[metric] for e in c.per_seed} for c in cells]
    seeds = [e["seed"] for e in cells[0].per_seed]
    same = len(set(seeds)) == len(seeds) and all(sorted(s) == sorted(seeds) for s in by_seed)
    if not same:
        return Stat(mean, None)
    return Stat(mean, _stat([statistics.fmean(s[seed] for s in by_seed) for seed in seeds]).std)


def _differing(configurations: Sequence[dict[str, str]]) -> list[str]:
    """The keys whose value differs between the configurations (or is missing in some)."""
    keys = set().union(*configurations)
    return sorted(k for k in keys if len({c.get(k) for c in configurations}) > 1)


def _label(overrides: dict[str, str], keys: Sequence[str], experiment: str | None) -> str:
    values = [(k, overrides[k]) for k in keys if k in overrides]
    parts = [v if k == "experiment" else f"{k}={v}" for k, v in values]
    return " ".join(parts) or experiment or ("defaults" if keys else "all runs")


# ---------------------------------------------------------------------------- the building
@dataclass
class _Group:
    """The records of one configuration, the evaluation used per fold, and how many were found."""

    overrides: dict[str, str]
    records: list[dict[str, Any]]
    used: dict[int, dict[str, Any]]
    found: dict[int, int]
    label: str
    paper: dict[str, Any] | None
    failed: dict[int, Failure]


def _failed(failures: Sequence[dict[str, Any]], evaluated: Iterable[int]) -> dict[int, Failure]:
    """The latest failure per fold, for the folds without an evaluation."""
    out: dict[int, Failure] = {}
    for f in sorted(failures, key=lambda f: str(f.get("failed_at"))):
        if (fold := _fold(f)) not in evaluated:
            out[fold] = Failure(
                fold, str(f["reason"]), str(f.get("error")), f["source"], str(f.get("failed_at"))
            )
    return dict(sorted(out.items()))


def _group(
    overrides: dict[str, str],
    records: list[dict[str, Any]],
    keys: list[str],
    failures: Sequence[dict[str, Any]] = (),
) -> _Group:
    by_fold: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_fold.setdefault(_fold(record), []).append(record)
    used = {f: max(by_fold[f], key=_when) for f in sorted(by_fold)}
    paper = next((r["paper"] for r in used.values() if r.get("paper")), None)
    label = _label(overrides, keys, _experiment([*records, *failures], overrides))
    if paper and paper.get("row"):
        label += f" ({paper['row']})"
    found = {f: len(rs) for f, rs in by_fold.items()}
    return _Group(overrides, records, used, found, label, paper, _failed(failures, used))


def _cell(record: dict[str, Any], found: int, protocol: Protocol, paper: dict | None) -> Cell:
    """One fold's cell; no paper value beside a plumbing-only record."""
    per_seed = [
        {"seed": s["seed"], "class_miou": 100 * s["class_miou"], "fbiou": 100 * s["fbiou"]}
        for s in record["seeds"]
    ]
    miou = _stat([s["class_miou"] for s in per_seed])
    fold = _fold(record)
    compared = paper if not record.get("plumbing_only") else None
    ref = ((compared or {}).get("class_miou") or {}).get(f"fold{fold}")
    return Cell(
        fold=fold,
        class_miou=miou,
        fbiou=_stat([s["fbiou"] for s in per_seed]),
        per_seed=per_seed,
        record=record["source"],
        evaluated_at=_when(record).isoformat(),
        records=found,
        protocol=protocol.id,
        checkpoint_selected_on=str(record["protocol"].get("checkpoint_selected_on", "unknown")),
        paper=ref,
        delta=None if ref is None else miou.mean - ref,
    )


def _row(group: _Group, folds: list[int], registry: dict[tuple[Any, ...], Protocol]) -> Row:
    cells = {
        f: _cell(r, group.found[f], _protocol(r, registry), group.paper)
        for f, r in group.used.items()
    }
    missing = [f for f in folds if f not in cells and f not in group.failed]
    mixed = _mixed({f: _signature(r) for f, r in group.used.items()})
    novel = [f for f, c in cells.items() if c.checkpoint_selected_on == "novel"]
    plumbing = any(r.get("plumbing_only") for r in group.used.values())
    notes = [PLUMBING_ONLY] if plumbing else []
    notes += [mixed] if mixed else []
    if novel:
        notes.append(f"checkpoint selected on novel classes ({_folds_text(novel)})")
    notes += [
        f"fold {f}: {c.records} records, latest used" for f, c in cells.items() if c.records > 1
    ]
    whole = not missing and not group.failed and mixed is None
    complete = [cells[f] for f in folds] if whole else None
    mean = _over_folds(complete, "class_miou") if complete is not None else None
    have = [cells[f] for f in folds if f in cells]
    partial = (
        PartialMean([c.fold for c in have], len(folds), *(_over_folds(have, m) for m in METRICS))
        if have and not whole and mixed is None
        else None
    )
    paper_mean = ((group.paper or {}).get("class_miou") or {}).get("mean")
    return Row(
        label=group.label,
        overrides=group.overrides,
        cells=cells,
        missing=missing,
        failed=group.failed,
        mean=mean,
        fbiou=_over_folds(complete, "fbiou") if complete is not None else None,
        protocols=sorted({c.protocol for c in cells.values()}, key=lambda p: int(p[1:])),
        paper=group.paper,
        paper_mean=paper_mean,
        delta=None if mean is None or paper_mean is None or plumbing else mean.mean - paper_mean,
        paper_mismatch=(
            _mismatch(group.paper, next(iter(group.used.values()))["protocol"])
            if group.paper
            else None
        ),
        notes=notes,
        partial=partial,
        plumbing_only=plumbing,
    )


def build_table(
    records: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]] = ()
) -> Table:
    """The table of `records` (as `load_records` gives them) and of the failed jobs' `failures`
    (`load_failures`): one row per configuration, one column per fold (`range(protocol.folds)`
    where the records say it, else the folds seen)."""
    by_configuration: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    failed: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for record in records:
        key = tuple(sorted(_overrides(record).items()))
        by_configuration.setdefault(key, []).append(record)
    for failure in failures:
        key = tuple(sorted(_overrides(failure).items()))
        by_configuration.setdefault(key, [])
        failed.setdefault(key, []).append(failure)
    keys = _differing([dict(k) for k in by_configuration])
    groups = [_group(dict(k), rs, keys, failed.get(k, ())) for k, rs in by_configuration.items()]
    if all(g.paper and g.paper.get("position") is not None for g in groups):
        groups.sort(key=lambda g: (g.paper["position"], g.label))
    else:
        groups.sort(key=lambda g: ([_order(g.overrides.get(k)) for k in keys], g.label))
    counts = [
        r["protocol"]["folds"] for r in records if isinstance(r["protocol"].get("folds"), int)
    ]
    seen = {_fold(r) for r in [*records, *failures]}
    folds = sorted(seen | set(range(max(counts, default=0))))
    registry: dict[tuple[Any, ...], Protocol] = {}
    rows = [_row(g, folds, registry) for g in groups]
    sources = [
        Source(r["source"], r["copies"], g.label, _fold(r), r is g.used[_fold(r)])
        for g in groups
        for r in g.records
    ]
    return Table(rows, folds, list(registry.values()), keys, sources)


# ---------------------------------------------------------------------------------- writing
def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _gaps(row: Row) -> list[str]:
    """`failed fold 1`, `missing folds 2, 3`: the folds without an evaluation."""
    gaps = [f"failed {_folds_text(sorted(row.failed))}"] if row.failed else []
    return gaps + ([f"missing {_folds_text(row.missing)}"] if row.missing else [])


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


def to_markdown(table: Table) -> str:
    """The table in Markdown (class-mIoU, then FB-IoU per fold), its marks explained and one
    line per protocol under it."""
    with_paper = any(r.paper for r in table.rows)
    several = len(table.protocols) > 1
    folds = [f"fold {f}" for f in table.folds]
    head = ["configuration", *folds, "mean", "FB-IoU", *(["paper", "Δ"] if with_paper else [])]
    head += [*(["protocol"] if several else []), "notes"]
    lines = [_md_line(head), _md_line(["---"] * len(head))]
    plumbing = [r for r in table.rows if r.plumbing_only]
    if plumbing:
        which = "every row" if len(plumbing) == len(table.rows) else "rows noted so"
        lines[:0] = [
            f"**{PLUMBING_ONLY[0].upper()}{PLUMBING_ONLY[1:]}** ({which}: plumbing_only=true, "
            "e.g. debug=tiny): these numbers show that the pipeline runs, not what the method "
            "does, and are not compared with the paper.",
            "",
        ]
    for row in table.rows:
        cells = [row.label, *(_fold_text(row, f, "class_miou") for f in table.folds)]
        cells += [_mean_text(row), _mean_text(row, "fbiou")]
        if with_paper:
            cells += ["" if row.paper_mean is None else f"{row.paper_mean:.1f}", _delta_text(row)]
        cells += [", ".join(row.protocols)] if several else []
        notes = row.notes + (_gaps(row) if row.partial else [])
        lines.append(_md_line([*cells, "; ".join(notes)]))
    lines += [
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
    fb_head = ["configuration", *folds]
    lines += ["", "FB-IoU (%) per fold:", "", _md_line(fb_head), _md_line(["---"] * len(fb_head))]
    for row in table.rows:
        fb = [_fold_text(row, f, "fbiou") for f in table.folds]
        lines.append(_md_line([row.label, *fb]))
    return "\n".join(lines) + "\n"


def _sources_md(table: Table) -> str:
    lines = [f"## Records read ({len(table.sources)})", ""]
    for s in table.sources:
        line = f"- `{s.path}`: {s.row}, fold {s.fold}"
        line += "" if s.used else " (not used: a later evaluation of this cell is shown)"
        line += f"; same evaluation in {', '.join(f'`{c}`' for c in s.copies)}" if s.copies else ""
        lines.append(line)
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)


def _csv_rows(table: Table) -> list[list[Any]]:
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
        notes += [f"missing {_folds_text(row.missing)}"] if row.missing else []
        if row.paper_mismatch:
            notes.append(f"paper measured on {row.paper_mismatch}")
        plumbing = str(row.plumbing_only).lower()
        out.append([*line, " ".join(row.protocols), "; ".join(notes + row.notes), plumbing])
    return out


def _heatmap_means(table: Table) -> tuple[list[float], str] | None:
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

    means = _heatmap_means(table)
    if means is None:
        raise ValueError(
            "a heatmap needs a two-key sweep whose rows have means over the same folds"
        )
    first, second = table.keys
    ys = sorted({r.overrides.get(first) for r in table.rows}, key=_order)
    xs = sorted({r.overrides.get(second) for r in table.rows}, key=_order)
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
        atomic_write(md, f"# Evaluation report\n\n{to_markdown(table)}\n{_sources_md(table)}")
        with atomic_open(csv_path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(_csv_rows(table))
        atomic_write(json_path, json.dumps(asdict(table), indent=2, ensure_ascii=False) + "\n")
        written = [md, csv_path, json_path]
        if _heatmap_means(table) is not None:
            written.append(write_heatmap(table, out / HEATMAP))
    except OSError as exc:
        raise ReportError(f"cannot write the report into {out}: {one_line(exc)}") from None
    return table, written


# -------------------------------------------------------------------------------------- CLI
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


def print_report(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> Table:
    """`report`, then print the table and a last line naming the files written."""
    table, written = report(paths, out_dir)
    print(to_markdown(table), end="")
    print(f"wrote {', '.join(map(str, written))}")
    return table


if __name__ == "__main__":
    sys.exit(main())
