"""Reference predictors that need no training, and the episodic scoring they share with the demo.

* ``network_predictor``: any network's argmax (the untrained network: same seed and
  initialisation that training starts from).
* ``prior_predictor``: PFENet's training-free prior mask thresholded (the frozen backbone only).
* ``prototype_predictor``: the training-free prototype baseline: the masked-GAP prototype of the
  support's layer4 features, cosine similarity with the query's, foreground where it reaches a
  threshold; ``choose_threshold`` picks it on base-class episodes, never on the test classes.

``python -m sdaanet.references [overrides] [--out FILE]`` scores the untrained network and the
prototype baseline on a config's test episodes over ``eval.seeds`` and writes one JSON record
with the same per-seed rows and summary as an evaluation record (``docs/real-photos.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from sdaanet.cli import entry_point
from sdaanet.config import compose_config
from sdaanet.io import atomic_write
from sdaanet.metrics import ClassMIoU, FBIoU
from sdaanet.models import Backbone, masked_gap

Predict = Callable[[dict[str, Tensor]], Tensor]
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))  # cosine 0.00 .. 0.95


@torch.no_grad()
def evaluate(predict: Predict, loader: DataLoader, n_classes: int) -> dict[str, float]:
    """Class-mIoU and FB-IoU of `predict` (episode batch -> (B,H,W) labels) over `loader`."""
    miou, fbiou = ClassMIoU(n_classes), FBIoU()
    for batch in loader:
        preds = predict(batch)
        miou.update(preds, batch["query_mask"], batch["class_index"])
        fbiou.update(preds, batch["query_mask"])
    return {
        "class_miou": miou.compute().item(),
        "fbiou": fbiou.compute().item(),
        "per_class_iou": [round(v, 4) for v in miou.per_class().tolist()],
    }


def network_predictor(net: torch.nn.Module) -> Predict:
    net.eval()
    return lambda b: net(b["query_image"], b["support_images"], b["support_masks"]).argmax(1)


def prior_predictor(net: torch.nn.Module, threshold: float = 0.5) -> Predict:
    """PFENet's training-free prior mask (frozen backbone only) thresholded at `threshold`.

    N-way batches (support_images (B,N,K,3,H,W)): one prior per class; a pixel takes the class
    of the highest prior when that prior exceeds `threshold`, else background."""
    net.eval()

    def predict(b: dict[str, Tensor]) -> Tensor:
        images, masks = b["support_images"], b["support_masks"]
        if images.dim() == 5:
            images, masks = images[:, None], masks[:, None]
        pairs = zip(images.unbind(1), masks.unbind(1), strict=True)
        priors = torch.cat([net.prior(b["query_image"], i, m) for i, m in pairs], dim=1)
        best, cls = priors.max(1)
        return torch.where(best > threshold, cls + 1, 0)

    return predict


@torch.no_grad()
def prototype_similarity(backbone: Backbone, batch: dict[str, Tensor]) -> Tensor:
    """(B,H,W) cosine similarity of each query pixel's layer4 feature with the support
    prototype (masked GAP, averaged over the K shots), at the input size."""
    backbone.eval()
    query = backbone(batch["query_image"])
    protos = []
    for image, mask in zip(
        batch["support_images"].unbind(1), batch["support_masks"].unbind(1), strict=True
    ):
        feats = backbone(image)
        mask = F.interpolate((mask == 1).float()[:, None], feats.shape[-2:], mode="bilinear")
        protos.append(masked_gap(feats, mask))
    proto = torch.stack(protos).mean(0)
    cos = F.cosine_similarity(query, proto, dim=1)[:, None]
    return F.interpolate(cos, batch["query_image"].shape[-2:], mode="bilinear")[:, 0]


def prototype_predictor(backbone: Backbone, threshold: float) -> Predict:
    """Foreground where the prototype's cosine similarity reaches `threshold`."""
    return lambda b: (prototype_similarity(backbone, b) >= threshold).long()


def choose_threshold(backbone: Backbone, loader: DataLoader) -> tuple[float, dict[float, float]]:
    """The threshold of ``THRESHOLDS`` with the best FB-IoU on `loader` (base-class episodes)."""
    scores = {t: FBIoU() for t in THRESHOLDS}
    for batch in loader:
        cos = prototype_similarity(backbone, batch)
        for t, metric in scores.items():
            metric.update((cos >= t).long(), batch["query_mask"])
    fb = {t: round(m.compute().item(), 4) for t, m in scores.items()}
    return max(fb, key=fb.__getitem__), fb


def score_references(overrides: Sequence[str]) -> dict[str, object]:
    """The untrained network and the prototype baseline on the test episodes of the config
    that `overrides` compose, per seed of ``eval.seeds``."""
    from sdaanet.build import build_datamodule, build_module
    from sdaanet.records import summarise

    cfg = compose_config(list(overrides))
    L.seed_everything(cfg.seed, workers=True)  # the initialisation training starts from
    net = build_module(cfg).net.eval()
    base = build_datamodule(compose_config([*overrides, "data.selection=base"]))
    base.setup("fit")
    threshold, base_fbiou = choose_threshold(net.backbone, base.val_dataloader())
    rows: dict[str, list[dict[str, float]]] = {"untrained": [], "prototype": []}
    for seed in cfg.eval.seeds:
        dm = build_datamodule(compose_config([*overrides, f"data.val_seed={seed}"]))
        dm.setup("test")
        loader, n = dm.test_dataloader(), dm.n_test_classes
        rows["untrained"].append({"seed": seed, **evaluate(network_predictor(net), loader, n)})
        proto = prototype_predictor(net.backbone, threshold)
        rows["prototype"].append({"seed": seed, **evaluate(proto, loader, n)})
    return {
        "fold": int(cfg.data.fold),
        "episodes_per_seed": int(cfg.data.val_episodes),
        "prototype_threshold": threshold,
        "threshold_base_fbiou": {str(t): v for t, v in base_fbiou.items()},
        **{name: {"seeds": runs, "summary": summarise(runs)} for name, runs in rows.items()},
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sdaanet.references",
        description="Score the untrained network and the training-free prototype baseline.",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. recipe=msrc_lite0")
    parser.add_argument("--out", type=Path, required=True, help="the JSON record to write")
    args = parser.parse_args(argv)
    result = {"overrides": list(args.overrides), **score_references(args.overrides)}
    atomic_write(args.out, json.dumps(result, indent=1) + "\n")
    for name in ("untrained", "prototype"):
        s = result[name]["summary"]
        print(f"{name}: class-mIoU {s['class_miou']['mean']:.4f} ± {s['class_miou']['std']:.4f}, "
              f"FB-IoU {s['fbiou']['mean']:.4f} ± {s['fbiou']['std']:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
