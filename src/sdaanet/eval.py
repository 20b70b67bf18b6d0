"""Evaluation entry point: `python -m sdaanet.eval ckpt_path=... [overrides]` (`sdaanet-eval`).

`mode=test` (default) runs the episodic test of a checkpoint once per seed of `eval.seeds` (the
paper averages five rounds) and reports, per seed and as mean +- std (sample std over seeds):
class-mIoU, FB-IoU and the per-class IoU, with the protocol that produced them. The record goes to
`metrics.json` in the run directory and, as `<checkpoint>-<tag>.json/.csv`, into `eval/` next to
the checkpoint's run.

Label modes (`eval.label_mode`; the data config's validation settings are overridden):

- `data`: as the data config says (for PASCAL/COCO that is the authors' mode).
- `authors`: inputs warped to 473x473, scored on the warped label (digest §5).
- `paper`: 321 input, aspect kept with zero padding, the prediction of the image region resized
  to the original label size and scored there (Sec. IV-B).
- `resized473`: 473 input, aspect kept, scored on the label resized and padded with it (the †
  rows of Table II).

`mode=complexity` reports learnable parameters, FPS and peak memory of the baseline and SD-AANet
(Table III, `sdaanet.complexity`); no checkpoint is needed.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from sdaanet.checkpoint import CheckpointError, load_compatible, read_checkpoint
from sdaanet.config import CONF_DIR, register_resolvers
from sdaanet.data.sources import DataConfigError, DataError, DataNotFoundError, one_line
from sdaanet.train import build_datamodule, build_module, build_trainer

log = logging.getLogger(__name__)

LABEL_MODES: dict[str, dict[str, Any]] = {
    "data": {},
    "authors": {"val_transform": "val", "val_size": 473, "return_raw_label": False},
    "paper": {"val_transform": "val_paper", "val_size": 321, "return_raw_label": True},
    "resized473": {"val_transform": "val_paper", "val_size": 473, "return_raw_label": False},
}


def apply_label_mode(cfg: DictConfig) -> None:
    """Set `cfg.data`'s validation settings for `cfg.eval.label_mode`."""
    mode = cfg.eval.label_mode
    if mode not in LABEL_MODES:
        raise DataConfigError(f"eval.label_mode must be one of {sorted(LABEL_MODES)}, got {mode!r}")
    for key, value in LABEL_MODES[mode].items():
        OmegaConf.update(cfg, f"data.{key}", value)


def output_dir_of(checkpoint: Path) -> Path:
    """`<run>/eval/` for `<run>/checkpoints/x.ckpt`, else `eval/` beside the checkpoint."""
    parent = checkpoint.resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else parent
    return run_dir / "eval"


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over seeds of class-mIoU, FB-IoU and every class's IoU."""

    def stats(values: list[float]) -> dict[str, float]:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "std": std}

    n_classes = len(per_seed[0]["per_class_iou"])
    return {
        "class_miou": stats([r["class_miou"] for r in per_seed]),
        "fbiou": stats([r["fbiou"] for r in per_seed]),
        "per_class_iou": [
            stats([r["per_class_iou"][c] for r in per_seed]) for c in range(n_classes)
        ],
    }


def _write(record: dict[str, Any], json_path: Path, csv_path: Path | None = None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(json_path)
    if csv_path is None:
        return
    names = record["classes"]
    rows = [[r["seed"], r["class_miou"], r["fbiou"], *r["per_class_iou"]] for r in record["seeds"]]
    s = record["summary"]
    for key in ("mean", "std"):
        rows.append(
            [key, s["class_miou"][key], s["fbiou"][key], *(c[key] for c in s["per_class_iou"])]
        )
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([["seed", "class_miou", "fbiou", *names], *rows])
    tmp.replace(csv_path)


def _print(record: dict[str, Any]) -> None:
    p = record["protocol"]
    print(
        f"\n{p['dataset']} fold {p['fold']}, {p['shot']}-shot, {p['episodes']} episodes x "
        f"{len(p['seeds'])} seeds, label mode {p['label_mode']} ({p['scored_on']})"
    )
    for r in record["seeds"]:
        print(f"  seed {r['seed']:>6}  class-mIoU {r['class_miou']:.4f}  FB-IoU {r['fbiou']:.4f}")
    s = record["summary"]
    print(
        f"  mean         class-mIoU {s['class_miou']['mean']:.4f} +- {s['class_miou']['std']:.4f}"
        f"  FB-IoU {s['fbiou']['mean']:.4f} +- {s['fbiou']['std']:.4f}"
    )
    per_class = ", ".join(
        f"{n} {c['mean']:.3f}" for n, c in zip(record["classes"], s["per_class_iou"], strict=True)
    )
    print(f"  per class: {per_class}")


def run(cfg: DictConfig) -> dict[str, float]:
    """Test `cfg.ckpt_path` over `cfg.eval.seeds`; returns the mean metrics, writes the record."""
    if not cfg.get("ckpt_path"):
        raise CheckpointError("ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt")
    checkpoint = read_checkpoint(cfg.ckpt_path)  # missing or corrupt: fails before data work
    apply_label_mode(cfg)
    datamodule = build_datamodule(cfg, stage="test")
    score_original = cfg.eval.label_mode == "paper"
    multiscale = list(cfg.eval.multiscale or [])
    module = build_module(cfg, datamodule, score_original=score_original, multiscale=multiscale)
    load_compatible(module.net, checkpoint, cfg.ckpt_path, cfg.shot)
    seeds = [int(s) for s in cfg.eval.seeds]
    if not seeds:
        raise DataConfigError("eval.seeds is empty; give at least one, e.g. eval.seeds=[321]")
    per_seed = []
    trainer = None
    for seed in seeds:
        OmegaConf.update(cfg, "data.val_seed", seed)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        trainer = build_trainer(cfg)
        trainer.test(module, datamodule=build_datamodule(cfg, stage="test"), verbose=False)
        per_seed.append({"seed": seed, **module.test_results})
    test_classes = datamodule.split_classes("test")
    record = {
        "checkpoint": str(cfg.ckpt_path),
        "protocol": {
            "dataset": datamodule.name,
            "fold": datamodule.fold,
            "shot": datamodule.shot,
            "ways": datamodule.ways,
            "episodes": datamodule.val_episodes,
            "seeds": seeds,
            "input_size": datamodule.val_size,
            "val_transform": datamodule.val_transform,
            "label_mode": cfg.eval.label_mode,
            "scored_on": "original label size" if score_original else "transformed label",
            "multiscale": multiscale or None,
            "checkpoint_selected_on": checkpoint.get("hyper_parameters", {}).get(
                "selection", "novel"
            ),
        },
        "classes": [datamodule.class_names.get(c, str(c)) for c in test_classes],
        "class_ids": test_classes,
        "seeds": per_seed,
        "summary": summarise(per_seed),
    }
    if trainer is None or trainer.is_global_zero:
        _write(record, Path(cfg.paths.output_dir) / "metrics.json")
        p = record["protocol"]
        tag = f"{Path(cfg.ckpt_path).stem}-{p['dataset']}-fold{p['fold']}-{p['shot']}shot-"
        tag += f"{p['label_mode']}{'-multiscale' if multiscale else ''}"
        out = output_dir_of(Path(cfg.ckpt_path))
        try:
            _write(record, out / f"{tag}.json", out / f"{tag}.csv")
            log.info("wrote %s.json/.csv in %s", tag, out)
        except OSError as err:
            log.warning("could not write next to the checkpoint (%s); see metrics.json", err)
        _print(record)
    s = record["summary"]
    return {
        "test/class_miou": s["class_miou"]["mean"],
        "test/class_miou_std": s["class_miou"]["std"],
        "test/fbiou": s["fbiou"]["mean"],
    }


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        if cfg.mode == "complexity":
            from sdaanet.complexity import run_complexity

            run_complexity(cfg)
            return None
        if cfg.mode != "test":
            raise DataConfigError(f"mode must be 'test' or 'complexity', got {cfg.mode!r}")
        metrics = run(cfg)
    except (DataNotFoundError, DataError, DataConfigError, CheckpointError) as exc:
        raise SystemExit(f"error: {one_line(exc)}") from None
    return metrics.get("test/class_miou")


def main() -> None:
    register_resolvers()
    _hydra_main()


if __name__ == "__main__":
    main()
