"""Accuracy of the fast path against plain fp32 on a checkpoint's test episodes.

    python bench/accuracy.py --ckpt logs/demo/runs/<run>/checkpoints/last.ckpt [--device cuda]

For plain fp32 and the default fast path (conf/runtime/), on the checkpoint's own data and
protocol: class-mIoU, the share of pixels whose prediction equals plain fp32's, and the change
in points. The bar (docs/performance.md): >= 99.5 % of pixels and <= 0.5 points. Results: a
printed table and `logs/bench/accuracy.json`. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import copy
import json
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its update check would hang offline
from pathlib import Path

import torch
from model import PATHS  # bench/model.py: plain fp32 and the fast path
from omegaconf import OmegaConf

from sdaanet.build import build_datamodule
from sdaanet.checkpoint import network_from_checkpoint
from sdaanet.complexity import device_name
from sdaanet.config import compose_config
from sdaanet.metrics import IGNORE_INDEX, ClassMIoU
from sdaanet.plan import settle
from sdaanet.runtime import apply_runtime, autocast

ROOT = Path(__file__).resolve().parents[1]


def predictions(net: torch.nn.Module, loader, runtime: dict, device: torch.device) -> list:
    """Per batch: (prediction, label, class index) on the CPU."""
    out = []
    net = apply_runtime(
        copy.deepcopy(net).to(device).eval(), OmegaConf.create(runtime), device.type
    )
    with torch.inference_mode(), autocast(runtime, device):
        for batch in loader:
            keys = ("query_image", "support_images", "support_masks")
            pred = net(*(batch[k].to(device) for k in keys)).argmax(1).cpu()
            out.append((pred, batch["query_mask"], batch["class_index"]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--episodes", type=int, default=None, help="default: the checkpoint's data")
    p.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "accuracy.json")
    args = p.parse_args()
    device = torch.device(args.device)
    episodes = [f"data.val_episodes={args.episodes}"] if args.episodes else []
    plan = settle(compose_config(episodes, config_name="eval"), args.ckpt, episodes)
    print(plan.took)
    net, _ = network_from_checkpoint(plan.path, plan.checkpoint)
    dm = build_datamodule(plan.cfg, stage="test")
    dm.setup("test")
    runs = {name: predictions(net, dm.test_dataloader(), rt, device) for name, rt in PATHS.items()}
    result = {"device": device_name(device), "checkpoint": args.ckpt, "paths": {}}
    for name, batches in runs.items():
        miou = ClassMIoU(dm.n_test_classes)
        equal = total = 0
        for (pred, label, index), (ref, _, _) in zip(batches, runs["plain fp32"], strict=True):
            miou.update(pred, label, index)
            valid = label != IGNORE_INDEX
            equal += int(((pred == ref) & valid).sum())
            total += int(valid.sum())
        result["paths"][name] = {"class_miou": float(miou.compute()), "equal": equal / total}
    base = result["paths"]["plain fp32"]["class_miou"]
    for name, r in result["paths"].items():
        r["change_points"] = (r["class_miou"] - base) * 100
        print(f"{name:<12} class-mIoU {r['class_miou']:.4f}  pixels equal to plain fp32 "
              f"{r['equal']:.2%}  change {r['change_points']:+.2f} points")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{result['device']}; wrote {args.out}")


if __name__ == "__main__":
    main()
