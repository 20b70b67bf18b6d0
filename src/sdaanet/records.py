"""The evaluation record: its schema, name, files (atomic write, read, validation), the multi-seed
summary, the override keys of its configuration, and its console text.

A record (format `RECORD_FORMAT`) is the JSON object that `sdaanet-eval` and a training run's
end-of-run evaluation write (`metrics.json` in the run directory and `<run>/eval/<name>.json/.csv`
beside the checkpoint's run) and `sdaanet-report` reads: `protocol`, `seeds` (per-seed
class-mIoU, FB-IoU, per-class IoU), `summary` (mean, sample std and best over seeds), and the
checkpoint, configuration, paper and validation fields that go with them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdaanet.config import PLUMBING_ONLY
from sdaanet.errors import one_line
from sdaanet.io import atomic_open, atomic_write, unused_path
from sdaanet.layout import eval_dir, metrics_file, run_of

log = logging.getLogger(__name__)

RECORD_FORMAT = 2
RECORD_KEYS = ("protocol", "summary", "seeds")


class RecordError(ValueError):
    """A file that cannot be read as an evaluation record (the message names it)."""


# ------------------------------------------------------------------------------ the contents
def parse_override(override: str) -> tuple[str, str | None]:
    """(key, value) of a command-line override: `data.val_size=97` -> (`data.val_size`, `97`),
    `+x=1` -> (`x`, `1`); a deletion (`~x`, `~x=1`) has the value None."""
    raw, _, value = override.partition("=")
    return raw.lstrip("+~"), None if raw.startswith("~") else value


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample std and best (max: BAM's and HDMNet's "Best") over seeds of class-mIoU,
    FB-IoU and every class's IoU (over the seeds whose episodes drew the class; NaN when none
    did)."""

    def stats(values: list[float]) -> dict[str, float]:
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return {"mean": math.nan, "std": math.nan, "best": math.nan}
        mean, std = mean_std(values)
        return {"mean": mean, "std": std, "best": max(values)}

    n_classes = len(per_seed[0]["per_class_iou"])
    return {
        "class_miou": stats([r["class_miou"] for r in per_seed]),
        "fbiou": stats([r["fbiou"] for r in per_seed]),
        "per_class_iou": [
            stats([r["per_class_iou"][c] for r in per_seed]) for c in range(n_classes)
        ],
    }


def configuration(stored: dict[str, Any] | None, overrides: Sequence[str] | None) -> dict:
    """The record's configuration: the checkpoint's training overrides with the evaluation's
    command-line ones (ckpt_path aside) winning; the evaluation's experiment if it chose one."""
    stored = stored or {"experiment": None, "overrides": []}
    merged = {parse_override(o)[0]: o for o in stored["overrides"] if "=" in o}
    for o in overrides or []:
        if "=" in o and (key := parse_override(o)[0]) != "ckpt_path":
            merged[key] = o
    chosen = [o.split("=", 1)[1] for o in overrides or [] if o.startswith("experiment=")]
    return {
        "experiment": chosen[-1] if chosen else stored["experiment"],
        "overrides": list(merged.values()),
    }


def metrics_of(record: dict[str, Any]) -> dict[str, float]:
    """The numbers an entry point returns for a record."""
    s = record["summary"]
    out = {
        "test/class_miou": s["class_miou"]["mean"],
        "test/class_miou_std": s["class_miou"]["std"],
        "test/fbiou": s["fbiou"]["mean"],
    }
    if (record.get("validation") or {}).get("class_miou") is not None:
        out["val/class_miou"] = record["validation"]["class_miou"]
    return out


# --------------------------------------------------------------------------------- the files
def record_name(record: dict[str, Any]) -> str:
    """The file stem of a record: the checkpoint and every protocol setting that changes the
    numbers, e.g. `last-pascal-fold0-1shot-authors-1000ep-seeds321-325-473px`."""
    p = record["protocol"]
    seeds = p["seeds"]
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    seed_tag = (
        f"{seeds[0]}-{seeds[-1]}"
        if contiguous and len(seeds) > 1
        else "+".join(str(s) for s in seeds)
    )
    mode = f"preset-{p['preset']}" if p.get("preset") else p["label_mode"]
    return (
        f"{Path(record['checkpoint']).stem}-{p['dataset']}-fold{p['fold']}-{p['shot']}shot-"
        f"{mode}{'-multiscale' if p['multiscale'] else ''}"
        f"{'-' + p['kshot'] if p.get('kshot') else ''}-{p['episodes']}ep-"
        f"seeds{seed_tag}-{p['input_size']}px"
    )


def output_dir_of(checkpoint: Path) -> Path:
    """`<run>/eval/` for `<run>/checkpoints/x.ckpt`, else `eval/` beside the checkpoint."""
    return eval_dir(run_of(checkpoint))


def _write(record: dict[str, Any], json_path: Path, csv_path: Path | None = None) -> None:
    atomic_write(json_path, json.dumps(record, indent=2) + "\n")
    if csv_path is None:
        return
    names = record["classes"]
    rows = [[r["seed"], r["class_miou"], r["fbiou"], *r["per_class_iou"]] for r in record["seeds"]]
    s = record["summary"]
    for key in ("mean", "std"):
        rows.append(
            [key, s["class_miou"][key], s["fbiou"][key], *(c[key] for c in s["per_class_iou"])]
        )
    with atomic_open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([["seed", "class_miou", "fbiou", *names], *rows])


def write_record(record: dict[str, Any], output_dir: str | Path) -> list[Path]:
    """Write `output_dir/metrics.json` and `<run>/eval/<record_name>.json/.csv` beside the
    checkpoint's run, each under a free name (`-2`, `-3`, ...): no record replaces another."""
    written = [unused_path(metrics_file(output_dir))]
    _write(record, written[0])
    out = output_dir_of(Path(record["checkpoint"]))
    json_path = unused_path(out / f"{record_name(record)}.json")
    try:
        _write(record, json_path, json_path.with_suffix(".csv"))
        written += [json_path, json_path.with_suffix(".csv")]
    except OSError as err:
        log.warning("could not write next to the checkpoint (%s); see metrics.json", err)
    return written


def problem(obj: dict[str, Any]) -> str | None:
    """Why an object with the record keys cannot be used, or None."""
    if not isinstance(obj["protocol"], dict) or not isinstance(obj["seeds"], list):
        return "protocol must be an object and seeds a list"
    if not obj["seeds"]:
        return "no seeds"
    for entry in obj["seeds"]:
        if not isinstance(entry, dict) or "seed" not in entry:
            return "every entry of seeds needs a seed"
        values = [entry.get(k) for k in ("class_miou", "fbiou")]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return f"seed {entry['seed']} has no finite class_miou and fbiou"
    return None


def read_record(file: Path) -> dict[str, Any] | None:
    """The record in `file`; None if the file holds other JSON. Raises RecordError if it is
    unreadable or an unusable record."""
    try:
        obj = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{file}: unreadable JSON ({one_line(exc)})") from exc
    if not isinstance(obj, dict) or not all(k in obj for k in RECORD_KEYS):
        return None
    if (why := problem(obj)) is not None:
        raise RecordError(f"{file}: unusable evaluation record ({why})")
    return obj


def existing_record(output_dir: str | Path) -> dict[str, Any] | None:
    """The evaluation record `output_dir/metrics.json`, if a finished run left one."""
    path = metrics_file(output_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "summary" in record else None


# ------------------------------------------------------------------------------- the console
def skipped(output_dir: str | Path) -> str:
    """The line of a run that `resume` skips: its directory holds its evaluation record."""
    return f"skipped: {output_dir} holds its evaluation record (resume=false runs it again)"


def print_record(record: dict[str, Any]) -> None:
    """The record on the console: protocol, per-seed and mean (and best) scores, per class."""
    p = record["protocol"]
    print(
        f"\n{p['dataset']} fold {p['fold']}, {p['shot']}-shot, {p['episodes']} episodes x "
        f"{len(p['seeds'])} seeds, label mode {p['label_mode']} ({p['scored_on']})"
        + (f", {p['trained_shot']}-shot checkpoint by {p['kshot']}" if p.get("kshot") else "")
        + (f"; {PLUMBING_ONLY} (plumbing_only=true)" if record.get("plumbing_only") else "")
    )
    for r in record["seeds"]:
        print(f"  seed {r['seed']:>6}  class-mIoU {r['class_miou']:.4f}  FB-IoU {r['fbiou']:.4f}")
    s = record["summary"]
    print(
        f"  mean         class-mIoU {s['class_miou']['mean']:.4f} +- {s['class_miou']['std']:.4f}"
        f"  FB-IoU {s['fbiou']['mean']:.4f} +- {s['fbiou']['std']:.4f}"
    )
    if p.get("aggregate") == "best_and_mean":
        print(
            f"  best         class-mIoU {s['class_miou']['best']:.4f}"
            f"          FB-IoU {s['fbiou']['best']:.4f}"
        )
    per_class = ", ".join(
        f"{n} {c['mean']:.3f}" for n, c in zip(record["classes"], s["per_class_iou"], strict=True)
    )
    print(f"  per class: {per_class}")
