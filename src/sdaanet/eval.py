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
- `authors`: inputs warped to 473x473, scored on the warped label (digest §5).
- `paper`: 321 input, aspect kept with zero padding, the prediction of the image region resized
  to the original label size and scored there (Sec. IV-B).
- `resized473`: 473 input, aspect kept, scored on the label resized and padded with it (the †
  rows of Table II).

`mode=complexity` reports learnable parameters, FPS and peak memory of the baseline and SD-AANet
(Table III, `sdaanet.complexity`); no checkpoint is needed.
D-numbers (D1-D22) and "digest" sections cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from sdaanet.checkpoint import network_from_checkpoint, read_checkpoint, summary
from sdaanet.cli import entry_point
from sdaanet.config import CONF_DIR, register_resolvers
from sdaanet.errors import CheckpointError, CheckpointMismatchError, ConfigError
from sdaanet.io import atomic_open, atomic_write
from sdaanet.train import build_datamodule, build_module, build_trainer
from sdaanet.validate import check_config, precheck

log = logging.getLogger(__name__)

TRAINING_ONLY = {"alpha", "beta", "aux_weight", "kd_alpha", "kd_temperature", "dropout"}
BACKBONE_TRAINING_ONLY = {"weights", "freeze_bn"}


def apply_label_mode(cfg: DictConfig) -> None:
    """Set `cfg.data`'s validation settings for the selected `label_mode` group option."""
    for key, value in cfg.label_mode.data.items():
        OmegaConf.update(cfg, f"data.{key}", value)


def _keys(overrides: Sequence[str]) -> list[str]:
    """`data.val_size` for `data.val_size=97`, `+x=1` -> `x`."""
    return [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]


def _differences(composed: Any, stored: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """(key, configured, stored) for every architecture key that differs."""
    if isinstance(composed, dict) and isinstance(stored, dict):
        out = []
        for key in sorted(set(composed) | set(stored)):
            if prefix == "model" and key in TRAINING_ONLY:
                continue
            if prefix == "model.backbone" and key in BACKBONE_TRAINING_ONLY:
                continue
            out += _differences(composed.get(key), stored.get(key), f"{prefix}.{key}")
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
    if int(cfg.shot) != int(info["shot"]) and (keys is None or "shot" in keys):
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained {info['shot']}-shot but shot={cfg.shot} is "
            f"configured: pass shot={info['shot']}, or a {cfg.shot}-shot checkpoint"
        )
    composed = OmegaConf.to_container(cfg.model, resolve=True)
    arch_keys = ("model", "backbone", "experiment")
    for key, configured, stored in _differences(composed, info["network"], "model"):
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
        cfg.shot = int(info["shot"])
    took = f"network {summary(info['network'])}, {info['shot']}-shot"
    data_chosen = keys is None or any(k in ("data", "experiment") for k in keys)
    if info["data"] is None:
        took += "; data from the configuration (this checkpoint's format records none)"
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


def _header(datamodule: Any, cfg: DictConfig, seeds: list[int]) -> str:
    return (
        f"evaluating {datamodule.name} fold {datamodule.fold}, {datamodule.shot}-shot, "
        f"{datamodule.val_episodes} episodes x {len(seeds)} seeds {seeds}, input "
        f"{datamodule.val_size} px ({datamodule.val_transform}), label mode {cfg.label_mode.name}"
    )


def run(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict[str, float]:
    """Test `cfg.ckpt_path` over `cfg.eval.seeds`; returns the mean metrics, writes the record.

    `overrides`: the command line's (see `from_checkpoint`); None takes `cfg` as explicit."""
    if not cfg.get("ckpt_path"):
        raise CheckpointError("ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt")
    check_config(cfg)
    checkpoint = read_checkpoint(cfg.ckpt_path)  # missing or corrupt: fails before data work
    net, info = network_from_checkpoint(cfg.ckpt_path, checkpoint)
    print(from_checkpoint(cfg, info, str(cfg.ckpt_path), overrides))
    apply_label_mode(cfg)
    seeds = [int(s) for s in cfg.eval.seeds]
    datamodule = build_datamodule(cfg, stage="test")
    score_original = bool(cfg.label_mode.score_original)
    multiscale = list(cfg.eval.multiscale or [])
    module = build_module(
        cfg, datamodule, net=net, score_original=score_original, multiscale=multiscale
    )
    print(_header(datamodule, cfg, seeds))
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
            "label_mode": cfg.label_mode.name,
            "scored_on": "original label size" if score_original else "transformed label",
            "multiscale": multiscale or None,
            "checkpoint_selected_on": info["selection"],
        },
        "classes": [datamodule.class_names.get(c, str(c)) for c in test_classes],
        "class_ids": test_classes,
        "seeds": per_seed,
        "summary": summarise(per_seed),
    }
    if trainer is None or trainer.is_global_zero:
        written = [Path(cfg.paths.output_dir) / "metrics.json"]
        _write(record, written[0])
        p = record["protocol"]
        tag = f"{Path(cfg.ckpt_path).stem}-{p['dataset']}-fold{p['fold']}-{p['shot']}shot-"
        tag += f"{p['label_mode']}{'-multiscale' if multiscale else ''}"
        out = output_dir_of(Path(cfg.ckpt_path))
        try:
            _write(record, out / f"{tag}.json", out / f"{tag}.csv")
            written += [out / f"{tag}.json", out / f"{tag}.csv"]
        except OSError as err:
            log.warning("could not write next to the checkpoint (%s); see metrics.json", err)
        _print(record)
        print(f"evaluated {cfg.ckpt_path}; wrote {', '.join(str(w) for w in written)}")
    s = record["summary"]
    return {
        "test/class_miou": s["class_miou"]["mean"],
        "test/class_miou_std": s["class_miou"]["std"],
        "test/fbiou": s["fbiou"]["mean"],
    }


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@entry_point
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
    _hydra_main()


if __name__ == "__main__":
    main()
