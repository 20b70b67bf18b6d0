"""The rows of the report: evaluation records grouped by configuration (the Hydra overrides
that make one), the evaluation used per fold (the latest), the failed folds, and each row's
cells and means over the folds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sdaanet.config import PLUMBING_ONLY
from sdaanet.records import parse_override
from sdaanet.reporting.cells import (
    Cell,
    Failure,
    PartialMean,
    Protocol,
    Row,
    Source,
    Table,
    folds_text,
)
from sdaanet.reporting.protocols import mismatch, mixed_protocol, protocol_of, signature
from sdaanet.reporting.stats import Stat, over_folds

IGNORED_KEYS = {"data.fold", "ckpt_path", "resume", "test", "test_ckpt"}
IGNORED_PREFIXES = ("paths.", "hydra.", "hydra/")
METRICS = ("class_miou", "fbiou")


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


def value_order(value: str | None) -> tuple[int, float, str]:
    """Sort key of an override value: unset first, then numbers by value, then text."""
    if value is None:
        return (0, 0.0, "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)


def _differing(configurations: Sequence[dict[str, str]]) -> list[str]:
    """The keys whose value differs between the configurations (or is missing in some)."""
    keys = set().union(*configurations)
    return sorted(k for k in keys if len({c.get(k) for c in configurations}) > 1)


def _label(overrides: dict[str, str], keys: Sequence[str], experiment: str | None) -> str:
    values = [(k, overrides[k]) for k in keys if k in overrides]
    parts = [v if k == "experiment" else f"{k}={v}" for k, v in values]
    return " ".join(parts) or experiment or ("defaults" if keys else "all runs")


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
    miou = Stat.of([s["class_miou"] for s in per_seed])
    fold = _fold(record)
    compared = paper if not record.get("plumbing_only") else None
    ref = ((compared or {}).get("class_miou") or {}).get(f"fold{fold}")
    return Cell(
        fold=fold,
        class_miou=miou,
        fbiou=Stat.of([s["fbiou"] for s in per_seed]),
        per_seed=per_seed,
        record=record["source"],
        evaluated_at=_when(record).isoformat(),
        records=found,
        protocol=protocol.id,
        checkpoint_selected_on=str(record["protocol"].get("checkpoint_selected_on", "unknown")),
        paper=ref,
        delta=None if ref is None else miou.mean - ref,
    )


def _over_folds(cells: Sequence[Cell], metric: str) -> Stat:
    """`over_folds` of the cells' per-seed scores."""
    return over_folds([c.per_seed for c in cells], metric)


def _row(group: _Group, folds: list[int], registry: dict[tuple[Any, ...], Protocol]) -> Row:
    cells = {
        f: _cell(r, group.found[f], protocol_of(r, registry), group.paper)
        for f, r in group.used.items()
    }
    missing = [f for f in folds if f not in cells and f not in group.failed]
    mixed = mixed_protocol({f: signature(r) for f, r in group.used.items()})
    novel = [f for f, c in cells.items() if c.checkpoint_selected_on == "novel"]
    plumbing = any(r.get("plumbing_only") for r in group.used.values())
    notes = [PLUMBING_ONLY] if plumbing else []
    notes += [mixed] if mixed else []
    if novel:
        notes.append(f"checkpoint selected on novel classes ({folds_text(novel)})")
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
            mismatch(group.paper, next(iter(group.used.values()))["protocol"])
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
        groups.sort(key=lambda g: ([value_order(g.overrides.get(k)) for k in keys], g.label))
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
