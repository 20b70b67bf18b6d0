"""Evaluation entry point: `python -m sdaanet.eval ckpt_path=... [overrides]` (`sdaanet-eval`).

`mode=test` (default) runs the episodic test of a checkpoint once per seed of `eval.seeds` (the
paper averages five rounds) and reports, per seed and as mean +- std (sample std over seeds):
class-mIoU, FB-IoU and the per-class IoU, with the protocol that produced them. The record goes to
`metrics.json` in the run directory and, as `<checkpoint>-<tag>.json/.csv`, into `eval/` next to
the checkpoint's run.

With only `ckpt_path=` given, the checkpoint is evaluated as it was trained: its network, shot
and data settings come from the checkpoint (one printed line says so); `data=...`,
`experiment=...` or `data.<key>=...` on the command line win for the data, and an override that
contradicts the stored network is refused, naming both values.

Label modes (the `label_mode` group; they override the data's validation settings):

- `data`: as the data config says (for PASCAL/COCO that is the authors' mode).
- `authors`: inputs warped to 473x473, scored on the warped label (D16).
- `paper`: 321 input, aspect kept with zero padding, the prediction of the image region resized
  to the original label size and scored there (Sec. IV-B).
- `resized473`: 473 input, aspect kept, scored on the label resized and padded with it (the †
  rows of Table II).

`mode=complexity` reports learnable parameters, FPS and peak memory of the baseline and SD-AANet
(Table III, `sdaanet.complexity`); no checkpoint is needed.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from sdaanet.build import build_datamodule, build_module, build_trainer
from sdaanet.checkpoint import (
    network_from_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    selected_on,
    summary,
    training_only,
)
from sdaanet.cli import entry_point
from sdaanet.config import CONF_DIR, PLUMBING_ONLY, register_resolvers
from sdaanet.console import setup_lines_once
from sdaanet.errors import CheckpointError, CheckpointMismatchError, ConfigError
from sdaanet.io import atomic_open, atomic_write, unused_path
from sdaanet.models.backbones import TRAINING_ONLY as BACKBONE_TRAINING_ONLY
from sdaanet.protocols import TestProtocol, apply_protocol
from sdaanet.scoring import SCORING
from sdaanet.sweep import run_app, task
from sdaanet.validate import check_config, precheck

log = logging.getLogger(__name__)

RECORD_FORMAT = 2


def _key(override: str) -> str:
    """`data.val_size` for `data.val_size=97`, `+x=1` -> `x`."""
    return override.split("=", 1)[0].lstrip("+~")


def _keys(overrides: Sequence[str]) -> list[str]:
    return [_key(o) for o in overrides if "=" in o]


def _differences(
    composed: Any, stored: Any, prefix: str, training_only: frozenset[str]
) -> list[tuple[str, Any, Any]]:
    """(key, configured, stored) for every architecture key that differs; the network's
    `training_only` arguments and the backbone's are skipped."""
    if isinstance(composed, dict) and isinstance(stored, dict):
        out = []
        for key in sorted(set(composed) | set(stored)):
            if prefix == "model" and key in training_only:
                continue
            if prefix == "model.backbone" and key in BACKBONE_TRAINING_ONLY:
                continue
            out += _differences(
                composed.get(key), stored.get(key), f"{prefix}.{key}", training_only
            )
        return out
    same = composed == stored or (
        isinstance(composed, list | tuple)
        and isinstance(stored, list | tuple)
        and [float(x) for x in composed] == [float(x) for x in stored]
    )
    return [] if same else [(prefix, composed, stored)]


def from_checkpoint(
    cfg: DictConfig, info: dict[str, Any], path: str, overrides: Sequence[str] | None
) -> str:
    """Set `cfg`'s network, shot and (unless the command line chose them) data settings from the
    checkpoint's description; returns the line that says what was taken. `overrides` are the
    command-line overrides (None: every setting of `cfg` is explicit, the data included)."""
    keys = _keys(overrides) if overrides is not None else None
    kshot = OmegaConf.select(cfg, "eval.kshot", default=None)
    shot, trained = int(cfg.shot), int(info["shot"])
    if kshot and shot <= trained:
        raise ConfigError(
            f"eval.kshot={kshot} tests checkpoint {path} ({trained}-shot) at more shots: pass "
            f"shot=K with K > {trained}, e.g. shot=5"
        )
    if shot != trained and (keys is None or "shot" in keys) and not kshot:
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained {trained}-shot but shot={shot} is configured: pass "
            f"shot={trained}, a {shot}-shot checkpoint, or eval.kshot=fusion|voting to test it "
            f"at {shot} shots"
        )
    composed = OmegaConf.to_container(cfg.model, resolve=True)
    if kshot:
        composed["shot"] = trained  # the data's K, not the network's
    arch_keys = ("model", "backbone", "experiment")
    free = training_only(info["network"])
    for key, configured, stored in _differences(composed, info["network"], "model", free):
        short = key.removeprefix("model.")
        named = keys is None or any(
            k in arch_keys or k == key or k == short or key.startswith(f"{k}.") for k in keys
        )
        if named:
            raise CheckpointMismatchError(
                f"{key.replace('model.backbone', 'backbone')}={configured} contradicts checkpoint "
                f"{path}, which holds {stored}: drop the override, or pass a checkpoint trained "
                "with it"
            )
    with open_dict(cfg):
        cfg.model = info["network"]
        cfg.backbone = info["network"].get("backbone")
        cfg.shot = shot if kshot else trained
    took = f"network {summary(info['network'])}, {trained}-shot"
    if kshot:
        took += f" tested at {shot} shots by {kshot}"
    data_chosen = keys is None or any(k in ("data", "experiment") for k in keys)
    if info["data"] is None:
        took += "; data from the configuration (this checkpoint's format records none)"
    elif keys is None:
        took += "; data from the configuration"
    elif data_chosen:
        took += "; data from the configuration (chosen on the command line)"
    else:
        data = OmegaConf.create(info["data"])
        named = [k for k in keys if k.startswith("data.")]
        for key in named:
            OmegaConf.update(
                data, key.removeprefix("data."), OmegaConf.select(cfg, key), force_add=True
            )
        with open_dict(cfg):
            cfg.data = data
        took += f"; data {data.get('_target_', '?').rsplit('.', 1)[-1]} fold {data.fold}"
        took += f" as trained{' except ' + ', '.join(named) if named else ''}"
    return f"from checkpoint {path}: {took}"


def output_dir_of(checkpoint: Path) -> Path:
    """`<run>/eval/` for `<run>/checkpoints/x.ckpt`, else `eval/` beside the checkpoint."""
    parent = checkpoint.resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else parent
    return run_dir / "eval"


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample std and best (max: BAM's and HDMNet's "Best") over seeds of class-mIoU,
    FB-IoU and every class's IoU (over the seeds whose episodes drew the class; NaN when none
    did)."""

    def stats(values: list[float]) -> dict[str, float]:
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return {"mean": math.nan, "std": math.nan, "best": math.nan}
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "std": std, "best": max(values)}

    n_classes = len(per_seed[0]["per_class_iou"])
    return {
        "class_miou": stats([r["class_miou"] for r in per_seed]),
        "fbiou": stats([r["fbiou"] for r in per_seed]),
        "per_class_iou": [
            stats([r["per_class_iou"][c] for r in per_seed]) for c in range(n_classes)
        ],
    }


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


def _print(record: dict[str, Any]) -> None:
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


def _header(datamodule: Any, protocol: TestProtocol, trained_size: int | None) -> str:
    """The evaluation's console line; a preset that moves the input off the size the checkpoint
    was trained at (`trained_size`, None if unrecorded) says so, as that alone changes scores."""
    text = (
        f"evaluating {datamodule.name} fold {datamodule.fold}, {datamodule.shot}-shot, "
        f"{datamodule.val_episodes} episodes x {len(protocol.seeds)} seeds {protocol.seeds}, "
        f"input {datamodule.val_size} px ({datamodule.val_transform}), "
    )
    if protocol.preset is None:
        return text + f"label mode {protocol.label_mode}"
    text += f"protocol {protocol.preset}: {protocol.matches}\n  not matched: {protocol.differs}"
    if trained_size and datamodule.val_size != trained_size:
        text += (
            f"\n  {protocol.preset}: evaluating at {datamodule.val_size} px; the checkpoint was "
            f"trained at {trained_size} px"
        )
    return text


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


def configuration(stored: dict[str, Any] | None, overrides: Sequence[str] | None) -> dict:
    """The record's configuration: the checkpoint's training overrides with the evaluation's
    command-line ones (ckpt_path aside) winning; the evaluation's experiment if it chose one."""
    stored = stored or {"experiment": None, "overrides": []}
    merged = {_key(o): o for o in stored["overrides"] if "=" in o}
    for o in overrides or []:
        if "=" in o and _key(o) != "ckpt_path":
            merged[_key(o)] = o
    chosen = [o.split("=", 1)[1] for o in overrides or [] if o.startswith("experiment=")]
    return {
        "experiment": chosen[-1] if chosen else stored["experiment"],
        "overrides": list(merged.values()),
    }


def existing_record(output_dir: str | Path) -> dict[str, Any] | None:
    """The evaluation record `output_dir/metrics.json`, if a finished run left one."""
    path = Path(output_dir) / "metrics.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "summary" in record else None


def skipped(output_dir: str | Path) -> str:
    """The line of a run that `resume` skips."""
    return f"skipped: {output_dir} holds its evaluation record (resume=false runs it again)"


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


def _test_loggers(cfg: DictConfig, seed: int, prefix: str) -> None:
    """One CSV log folder per seed (`csv/<prefix>seed<seed>/`), so no seed's log replaces
    another's; other loggers (W&B) belong to training and are left out."""
    loggers = {}
    for name, node in (cfg.get("logger") or {}).items():
        if node and str(node.get("_target_", "")).endswith("CSVLogger"):
            loggers[name] = OmegaConf.merge(node, {"version": f"{prefix}seed{seed}"})
    with open_dict(cfg):
        cfg.logger = loggers


def evaluate(
    cfg: DictConfig,
    ckpt_path: str | Path,
    overrides: Sequence[str] | None = None,
    *,
    configuration_of: dict[str, Any] | None = None,
    validation: float | None = None,
    log_prefix: str = "",
) -> dict[str, Any]:
    """Test the checkpoint over `cfg.eval.seeds`; returns the evaluation record (not written).

    `overrides`: the command line's (see `from_checkpoint`); None takes `cfg` as explicit.
    `configuration_of`: the record's configuration (default: the checkpoint's training
    configuration with `overrides` winning). `validation`: the training run's selection score."""
    cfg = copy.deepcopy(cfg)
    checkpoint = read_checkpoint(ckpt_path)  # missing or corrupt: fails before data work
    net, info = network_from_checkpoint(ckpt_path, checkpoint)
    print(from_checkpoint(cfg, info, str(ckpt_path), overrides))
    protocol = apply_protocol(cfg)
    seeds = protocol.seeds
    datamodule = build_datamodule(cfg, stage="test")
    multiscale = list(cfg.eval.multiscale or [])
    kshot = cfg.eval.get("kshot")
    module = build_module(
        cfg, datamodule, net=net, scoring=protocol.scoring,
        ignore_boundary=protocol.ignore_boundary, multiscale=multiscale, kshot=kshot,
    )  # fmt: skip
    trained_size = (info["data"] or {}).get("train_size", info["input_size"])
    print(_header(datamodule, protocol, trained_size))
    per_seed = []
    for seed in seeds:
        OmegaConf.update(cfg, "data.val_seed", seed)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        _test_loggers(cfg, seed, log_prefix)
        with setup_lines_once(first=seed == seeds[0]):
            trainer = build_trainer(cfg)
            trainer.test(module, datamodule=build_datamodule(cfg, stage="test"), verbose=False)
        per_seed.append({"seed": seed, **module.test_results})
    test_classes = datamodule.split_classes("test")
    paper = cfg.get("paper")
    return {
        "format": RECORD_FORMAT,
        "evaluated_at": datetime.now(timezone.utc).isoformat(),
        "checkpoint": str(ckpt_path),
        "run_dir": str(cfg.paths.output_dir),
        "protocol": {
            "dataset": datamodule.name,
            "fold": datamodule.fold,
            "folds": getattr(datamodule, "num_folds", None),
            "shot": datamodule.shot,
            "ways": datamodule.ways,
            "episodes": datamodule.val_episodes,
            "seeds": seeds,
            "input_size": datamodule.val_size,
            "val_transform": datamodule.val_transform,
            "label_mode": protocol.label_mode,
            "preset": protocol.preset,
            "scored_on": SCORING[protocol.scoring],
            "ignore_255": protocol.ignore_boundary,
            "aggregate": protocol.aggregate,
            "multiscale": multiscale or None,
            "kshot": kshot,
            "trained_shot": int(info["shot"]),
            "checkpoint_selected_on": selected_on(ckpt_path, checkpoint, info["selection"]),
        },
        "configuration": configuration_of or configuration(info.get("configuration"), overrides),
        "paper": OmegaConf.to_container(paper, resolve=True) if paper else None,
        "plumbing_only": bool(info.get("plumbing_only") or cfg.get("plumbing_only")),
        "validation": {"class_miou": validation} if validation is not None else None,
        "classes": [datamodule.class_names.get(c, str(c)) for c in test_classes],
        "class_ids": test_classes,
        "seeds": per_seed,
        "summary": summarise(per_seed),
    }


def write_record(record: dict[str, Any], output_dir: str | Path) -> list[Path]:
    """Write `output_dir/metrics.json` and `<run>/eval/<record_name>.json/.csv` beside the
    checkpoint's run, each under a free name (`-2`, `-3`, ...): no record replaces another."""
    written = [unused_path(Path(output_dir) / "metrics.json")]
    _write(record, written[0])
    out = output_dir_of(Path(record["checkpoint"]))
    json_path = unused_path(out / f"{record_name(record)}.json")
    try:
        _write(record, json_path, json_path.with_suffix(".csv"))
        written += [json_path, json_path.with_suffix(".csv")]
    except OSError as err:
        log.warning("could not write next to the checkpoint (%s); see metrics.json", err)
    return written


def run(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict[str, float]:
    """Test `cfg.ckpt_path` (a file, or a training run's directory) over `cfg.eval.seeds`; writes
    the record and returns its mean metrics. With `resume`, a run directory that already holds
    its record is not evaluated again.

    `overrides`: the command line's (see `from_checkpoint`); None takes `cfg` as explicit."""
    if not cfg.get("ckpt_path"):
        raise CheckpointError("ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt")
    check_config(cfg)
    if cfg.get("resume") and (done := existing_record(cfg.paths.output_dir)):
        print(
            f"skipped: {cfg.paths.output_dir} holds its evaluation record (resume=false redoes it)"
        )
        return metrics_of(done)
    ckpt_path = resolve_checkpoint(cfg.ckpt_path)
    record = evaluate(cfg, ckpt_path, overrides)
    if rank_zero_only.rank == 0:
        written = write_record(record, cfg.paths.output_dir)
        _print(record)
        print(f"evaluated {ckpt_path}; wrote {', '.join(str(w) for w in written)}")
    return metrics_of(record)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@task
def _hydra_main(cfg: DictConfig) -> float | None:
    if cfg.mode == "complexity":
        from sdaanet.complexity import run_complexity

        run_complexity(cfg)
        return None
    if cfg.mode != "test":
        raise ConfigError(f"mode must be 'test' or 'complexity', got {cfg.mode!r}")
    return run(cfg, list(HydraConfig.get().overrides.task)).get("test/class_miou")


def main() -> None:
    register_resolvers()
    entry_point(precheck)("eval", sys.argv[1:])  # one line, before Hydra makes a run folder
    run_app(_hydra_main, sys.argv[1:])


if __name__ == "__main__":
    main()
