"""Model speed and memory: the plain fp32 eager path against the fast path (conf/runtime/).

    python bench/model.py [--quick] [--repeats 3] [--warmup 1] [--device cpu|cuda]

1. Inference ms per episode: 1- and 5-shot, 321 and 473, ResNet-50 and ResNet-101
   (`--quick`: 1-shot ResNet-50 only), each the median of `--repeats` timed passes after
   `--warmup`; on CPU each network runs in a fresh process, whose peak RSS is reported.
2. Training step time: batch 4, 321, 1-shot, ResNet-50, forward + backward + SGD step.
3. End-to-end evaluation episodes/s, data loading included: the synthetic test loader at 473,
   ResNet-50, 1-shot, batch 1, 2 workers.
Also records the device name, torch version and thread count, and the fast path's speed-up per
row. Results: a printed table and `logs/bench/model.json`. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its update check would hang offline
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from sdaanet.complexity import _build, _inputs, device_name, profile
from sdaanet.config import compose_config
from sdaanet.runtime import apply_runtime, autocast

ROOT = Path(__file__).resolve().parents[1]
PLAIN = {"fast": False, "channels_last": False, "precision": "fp32", "compile": False}
FAST = {"fast": True, "channels_last": True, "precision": "auto", "compile": False}
PATHS = {"plain fp32": PLAIN, "fast": FAST}
COMPILED = {**FAST, "compile": True}


def network(backbone: str, shot: int) -> dict[str, Any]:
    """The resolved network node of the default SD-AANet with `backbone`, `shot`."""
    cfg = compose_config([f"backbone={backbone}", f"shot={shot}"])
    return OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[return-value]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_ms(
    runtime: dict[str, Any], device: torch.device, warmup: int, repeats: int
) -> float:
    """Median ms of one training step (batch 4, 321, 1-shot, ResNet-50, the authors' train-mode
    backbone BN): forward with the losses of Eq. 12, backward, SGD step."""
    torch.manual_seed(0)
    net = _build(network("resnet50", 1)).to(device)
    net = apply_runtime(net, OmegaConf.create(runtime), device.type)
    net.train()
    query, images, masks = _inputs(321, 1, 4, device)
    label = masks[:, 0]
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        with autocast(runtime, device):
            out = net(query, images, masks, label)
            loss = sum(net.loss_weights[k] * v for k, v in out.losses.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def eval_episodes_per_s(runtime: dict[str, Any], device: torch.device, episodes: int) -> float:
    """Episodes/s of the synthetic test loader at 473 (2 workers) through ResNet-50, 1-shot,
    batch 1, data loading included; the first batch (worker start-up) is not timed."""
    from sdaanet.train import build_datamodule  # the data stack (albumentations) only here

    cfg = compose_config(
        ["data.val_size=473", f"data.val_episodes={episodes + 1}", "data.val_batch_size=1"]
    )
    dm = build_datamodule(cfg, stage="test")
    dm.setup("test")
    net = _build(network("resnet50", 1)).to(device).eval()
    net = apply_runtime(net, OmegaConf.create(runtime), device.type)
    loader = iter(dm.test_dataloader())
    with torch.inference_mode(), autocast(runtime, device):
        batch = next(loader)
        net(batch["query_image"].to(device), batch["support_images"].to(device),
            batch["support_masks"].to(device))  # fmt: skip
        _sync(device)
        start = time.perf_counter()
        for batch in loader:
            args = (batch[k].to(device) for k in ("query_image", "support_images", "support_masks"))
            net(*args).argmax(1).cpu()
        _sync(device)
    return episodes / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1-shot ResNet-50 inference rows only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--episodes", type=int, default=12, help="end-to-end evaluation episodes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-e2e", action="store_true", help="no end-to-end row (no data stack)")
    p.add_argument("--compile", action="store_true", help="also time fast + torch.compile")
    p.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "model.json")
    args = p.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore", category=UserWarning)
    shots, sizes, backbones = [1, 5], [321, 473], ["resnet50", "resnet101"]
    if args.quick:
        shots, backbones = [1], ["resnet50"]
    rows = []
    for backbone in backbones:
        for shot in shots:
            for size in sizes:
                row = {"backbone": backbone, "shot": shot, "size": size}
                for name, runtime in PATHS.items():
                    r = profile(network(backbone, shot), size, shot, device,
                                args.warmup, args.repeats, runtime=runtime)  # fmt: skip
                    row[name] = {k: r[k] for k in ("ms_median", "peak_memory_mb", "precision")}
                if args.compile:
                    r = profile(network(backbone, shot), size, shot, device,
                                args.warmup, args.repeats, runtime=COMPILED)  # fmt: skip
                    row["fast+compile"] = {k: r[k] for k in ("ms_median", "peak_memory_mb")}
                row["speedup"] = row["plain fp32"]["ms_median"] / row["fast"]["ms_median"]
                rows.append(row)
                print(json.dumps(row))
    train = {n: train_step_ms(rt, device, args.warmup, args.repeats) for n, rt in PATHS.items()}
    e2e = (
        {}
        if args.skip_e2e
        else {n: eval_episodes_per_s(rt, device, args.episodes) for n, rt in PATHS.items()}
    )
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "inference": rows,
        "train_step_ms": train,
        "train_speedup": train["plain fp32"] / train["fast"],
        "eval_episodes_per_s": e2e,
        "eval_speedup": e2e["fast"] / e2e["plain fp32"] if e2e else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{result['device']}, torch {result['torch']}, {result['threads']} threads")
    print(f"{'backbone':<10}{'shot':>5}{'size':>6}{'plain ms':>11}{'fast ms':>10}{'x':>6}"
          f"{'plain MiB':>11}{'fast MiB':>10}  fast precision")  # fmt: skip
    for r in rows:
        a, b = r["plain fp32"], r["fast"]
        print(f"{r['backbone']:<10}{r['shot']:>5}{r['size']:>6}{a['ms_median']:>11.0f}"
              f"{b['ms_median']:>10.0f}{r['speedup']:>6.2f}{a['peak_memory_mb']:>11.0f}"
              f"{b['peak_memory_mb']:>10.0f}  {b['precision']}")  # fmt: skip
        if "fast+compile" in r:
            c = r["fast+compile"]["ms_median"]
            print(f"{'':<21}fast + torch.compile: {c:.0f} ms, x{a['ms_median'] / c:.2f}")
    print(f"training step (batch 4, 321): plain {train['plain fp32']:.0f} ms, fast "
          f"{train['fast']:.0f} ms, x{result['train_speedup']:.2f}")  # fmt: skip
    if e2e:
        print(f"evaluation incl. data (473): plain {e2e['plain fp32']:.2f} episodes/s, fast "
              f"{e2e['fast']:.2f} episodes/s, x{result['eval_speedup']:.2f}")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
