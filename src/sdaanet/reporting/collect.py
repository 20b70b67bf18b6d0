"""Finding and reading the records of a report: the evaluation records (`sdaanet.records`) and
failed jobs' `failed.json` (`sdaanet.sweep`) in the run folders under the paths given, exact
duplicates dropped."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sdaanet.errors import SdaanetError, one_line
from sdaanet.layout import eval_dir, metrics_file
from sdaanet.records import RecordError, read_record
from sdaanet.sweep import FAILURE_FILE

EXPECTED = "evaluation records (JSON with protocol/summary/seeds)"
HINT = "train with test=true or run sdaanet-eval"
LAYOUT_DEPTH = 2  # <run>/metrics.json, <sweep>/<job>/..., <table>/<experiment>/fold<k>/...
WHERE = f"in metrics.json or eval/*.json of this directory or of its folders {LAYOUT_DEPTH} deep"
PASS = "pass a run, sweep or table directory"


class ReportError(SdaanetError):
    """The report cannot be made or written."""


class NoRecordsError(ReportError, FileNotFoundError):
    """A path given to `sdaanet-report` is missing or holds no evaluation record."""


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
