"""`make demo`: train SD-AANet on the built-in synthetic dataset (fold 0 base classes), then
evaluate 1-shot on fold 0's novel classes against two references: the same network untrained,
and PFENet's training-free prior mask thresholded at 0.5. `make demo MODE=multiclass`
(`--multiclass`) does the same for the 5-way multi-class mode (Algorithm 1; the prior reference
gives each pixel the class of its highest prior).

No ImageNet weights can be downloaded everywhere, so the frozen backbone is first pre-trained on
the base classes (`sdaanet.pretrain`, cached under `data/weights/`): the novel classes stay unseen.

Writes the checkpoints, the metrics CSV, `demo_results.json` and `demo_episodes.png` into the
run directory and prints the three novel-class class-mIoUs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from sdaanet.build import build_datamodule, build_module
from sdaanet.checkpoint import load_network_weights, read_checkpoint
from sdaanet.cli import entry_point
from sdaanet.data.episodes import EpisodeDataset
from sdaanet.io import atomic_write
from sdaanet.layout import last_checkpoint
from sdaanet.metrics import foreground
from sdaanet.predict import load_predictor, save_outputs
from sdaanet.pretrain import pretrain_backbone
from sdaanet.references import evaluate, network_predictor, prior_predictor
from sdaanet.train import fit
from sdaanet.validate import precheck
from sdaanet.viz import episode_row, save_grid


def predict_example(ckpt: str, dataset: EpisodeDataset, out: Path) -> Path:
    """Test episode 0 through `sdaanet-predict`'s API, on the dataset's own images (not the
    episode's resized tensors); returns the overlay PNG written into `out`."""
    plan = dataset.plan(0)
    query, _ = dataset.source.load(plan.query)
    support, label = dataset.source.load(plan.supports[0][0])
    mask = (label == plan.class_id).astype(np.uint8)
    pred = load_predictor(ckpt).predict([(support, mask)], query)
    return save_outputs(query, pred, out, stem="episode0_query")[1]


def run(overrides: list[str], experiment: str = "demo") -> dict[str, Any]:
    """Pre-train the backbone if its weights are missing, train, score the trained network and
    the two references on the novel classes, write the demo's files; returns its summary."""
    start = time.time()
    # composed and checked as sdaanet-train's: a bad override is one line, before pre-training
    cfg = precheck("train", [f"experiment={experiment}", *overrides])
    multiclass = cfg.data.ways > 1
    out = Path(cfg.paths.output_dir)
    weights = cfg.backbone.weights
    if weights and not Path(weights).is_file():
        print(f"pre-training the {cfg.backbone.name} backbone on the base classes -> {weights}")
        datamodule = build_datamodule(cfg)
        pretrain_backbone(cfg.backbone.name, datamodule, weights, seed=cfg.seed, **cfg.pretrain)

    # the references: the untrained network (same seed, same init as training starts from)
    L.seed_everything(cfg.seed, workers=True)
    untrained = build_module(cfg).net
    trainer, module, datamodule = fit(cfg)
    loader = datamodule.test_dataloader()
    n = datamodule.n_test_classes

    ckpt = str(last_checkpoint(out))  # the final model, not picked on novel classes
    load_network_weights(module.net, read_checkpoint(ckpt))
    results = {
        "trained": evaluate(network_predictor(module.net), loader, n),
        "untrained": evaluate(network_predictor(untrained), loader, n),
        "prior_threshold_0.5": evaluate(prior_predictor(untrained), loader, n),
    }

    grid = save_grid(_episode_rows(module.net, loader, multiclass), out / "demo_episodes.png")
    example = None if multiclass else predict_example(ckpt, loader.dataset, out)

    summary = {
        "novel_class_miou": results,
        "checkpoint": ckpt,
        "metrics_csv": str(out / "csv" / "metrics.csv"),
        "episodes_png": str(grid),
        "predict_overlay_png": None if example is None else str(example),
        "seconds": round(time.time() - start, 1),
    }
    atomic_write(out / "demo_results.json", json.dumps(summary, indent=2))
    _print_summary(cfg, n, summary, out / "demo_results.json")
    return summary


def _episode_rows(net: nn.Module, loader: DataLoader, multiclass: bool) -> list[list[np.ndarray]]:
    """The demo grid's first six test episodes: support, query, target and prediction."""
    rows = []
    for batch in loader:
        preds = network_predictor(net)(batch)
        for i in range(preds.shape[0]):
            images, masks = batch["support_images"][i, 0], batch["support_masks"][i, 0]
            target, pred = batch["query_mask"][i], preds[i]
            if multiclass:  # the first class's support; every class counts as foreground
                images, masks = images[0], masks[0]
                target, pred = foreground(target), foreground(pred)
            rows.append(episode_row(images, masks, batch["query_image"][i], target, pred))
        if len(rows) >= 6:
            break
    return rows[:6]


def _print_summary(cfg: DictConfig, n: int, summary: dict[str, Any], results_json: Path) -> None:
    """The three class-mIoUs on the `n` novel classes and where the demo's files are."""
    results = summary["novel_class_miou"]
    mode = f"{cfg.data.ways}-way multi-class" if cfg.data.ways > 1 else "binary"
    print(f"\nSD-AANet demo ({mode}), fold {cfg.data.fold}, {cfg.shot}-shot, novel classes ({n}):")
    for name, m in results.items():
        print(f"  {name:<22} class-mIoU {m['class_miou']:.4f}   FB-IoU {m['fbiou']:.4f}")
    print(f"  trained, per class (Table VIII style): {results['trained']['per_class_iou']}")
    print(
        f"checkpoint:  {summary['checkpoint']}\nmetrics CSV: {summary['metrics_csv']}\n"
        f"episodes:    {summary['episodes_png']}"
    )
    if summary["predict_overlay_png"] is not None:
        print(f"overlay:     {summary['predict_overlay_png']}  (sdaanet-predict on test episode 0)")
    print(f"results:     {results_json}  ({summary['seconds']} s)")


@entry_point
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    args = sys.argv[1:]
    experiment = "demo_multiclass" if "--multiclass" in args else "demo"
    run([a for a in args if a != "--multiclass"], experiment)


if __name__ == "__main__":
    main()
