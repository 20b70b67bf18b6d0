"""Model speed and memory: the plain fp32 eager path against the fast path (conf/runtime/).

    python bench/model.py [--quick] [--repeats 3] [--warmup 1] [--device cpu|cuda]
        [--batch 16] [--compile] [--sync-debug] [--workers 8] [--docs]

1. Inference ms per episode: 1- and 5-shot, 321 and 473, ResNet-50 and ResNet-101
   (`--quick`: 1-shot ResNet-50 only), each the median of `--repeats` timed passes after
   `--warmup`; on CPU each network runs in a fresh process, whose peak RSS is reported.
2. Training step time: batch 4, 321, 1-shot, ResNet-50, forward + backward + SGD step.
3. End-to-end evaluation episodes/s, data loading included: the synthetic test loader at 473,
   ResNet-50, 1-shot, batch 1, 2 workers.
`--batch B` adds every inference row and the end-to-end row at batch B (episodes per forward);
`--compile` adds fast + torch.compile (`runtime.compile_mode=auto`: CUDA graphs on CUDA) with
its compilation time; `--sync-debug` runs one fast forward under
`torch.cuda.set_sync_debug_mode("warn")` and records the host-sync warnings it raised; the
training row is also timed with `backbone.freeze_bn=true` (the one-pass backbone). Also records
the device name, torch version and thread count, and the fast path's speed-up per row. Results:
a printed table and `logs/bench/model.json` (`--docs`: also `docs/bench_<device>.json`). Never
part of the test suite.
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
    runtime: dict[str, Any], device: torch.device, warmup: int, repeats: int,
    batch: int = 4, freeze_bn: bool = False,
) -> float:  # fmt: skip
    """Median ms of one training step (`batch`, 321, 1-shot, ResNet-50; the authors' train-mode
    backbone BN, or `freeze_bn`: running statistics, which the fast path's one backbone pass
    needs): forward with the losses of Eq. 12, backward, SGD step."""
    torch.manual_seed(0)
    node = network("resnet50", 1)
    node["backbone"]["freeze_bn"] = freeze_bn
    net = _build(node).to(device)
    net = apply_runtime(net, OmegaConf.create(runtime), device.type)
    net.train()
    query, images, masks = _inputs(321, 1, batch, device)
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


def eval_episodes_per_s(
    runtime: dict[str, Any], device: torch.device, episodes: int, batch: int = 1, workers: int = 2
) -> float:
    """Episodes/s of the synthetic test loader at 473 (`workers` workers, pinned memory on CUDA)
    through ResNet-50, 1-shot, `batch` episodes per forward, data loading included; the first
    batch (worker start-up) is not timed."""
    from sdaanet.build import build_datamodule  # the data stack (albumentations) only here

    cfg = compose_config(
        ["data.val_size=473", f"data.val_episodes={episodes + batch}",
         f"data.val_batch_size={batch}", f"data.num_workers={workers}"]
    )  # fmt: skip
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
            keys = ("query_image", "support_images", "support_masks")
            net(*(batch[k].to(device, non_blocking=True) for k in keys)).argmax(1).cpu()
        _sync(device)
    return episodes / (time.perf_counter() - start)


def inference_row(
    backbone: str, shot: int, size: int, batch: int, device: torch.device, args: Any
) -> dict[str, Any]:
    """Plain, fast (and with `--compile` fast + torch.compile) ms per forward of `batch`
    episodes, per episode, and peak memory."""
    row: dict[str, Any] = {"backbone": backbone, "shot": shot, "size": size, "batch": batch}
    paths = {**PATHS, **({"fast+compile": COMPILED} if args.compile else {})}
    for name, runtime in paths.items():
        start = time.perf_counter()
        r = profile(network(backbone, shot), size, shot, device, args.warmup, args.repeats,
                    batch=batch, runtime=runtime)  # fmt: skip
        row[name] = {k: r.get(k) for k in ("ms_median", "peak_memory_mb", "precision")}
        row[name]["ms_per_episode"] = r["ms_median"] / batch
        if name == "fast+compile":  # the warm-up holds the compilation
            row[name]["wall_s_with_compilation"] = time.perf_counter() - start
    row["speedup"] = row["plain fp32"]["ms_median"] / row["fast"]["ms_median"]
    return row


def sync_warnings(device: torch.device) -> list[str]:
    """The host-sync warnings of one fast forward (1-shot, 473, ResNet-50) on CUDA, caught
    with `torch.cuda.set_sync_debug_mode("warn")`: the hot path should raise none."""
    if device.type != "cuda":
        return []
    net = _build(network("resnet50", 1)).to(device).eval()
    net = apply_runtime(net, OmegaConf.create(FAST), device.type)
    query, images, masks = _inputs(473, 1, 1, device)
    with torch.inference_mode(), autocast(FAST, device):
        net(query, images, masks)  # warm-up: allocator, cuDNN autotuning
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                net(query, images, masks)
            finally:
                torch.cuda.set_sync_debug_mode("default")
    return [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1-shot ResNet-50 inference rows only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--episodes", type=int, default=12, help="end-to-end evaluation episodes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-e2e", action="store_true", help="no end-to-end row (no data stack)")
    p.add_argument("--compile", action="store_true", help="also time fast + torch.compile")
    p.add_argument("--batch", type=int, default=1, help="also time B episodes per forward")
    p.add_argument("--workers", type=int, default=2, help="end-to-end loader workers")
    p.add_argument("--sync-debug", action="store_true", help="count host syncs (CUDA)")
    p.add_argument("--docs", action="store_true", help="also write docs/bench_<device>.json")
    p.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "model.json")
    args = p.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore", category=UserWarning)
    shots, sizes, backbones = [1, 5], [321, 473], ["resnet50", "resnet101"]
    if args.quick:
        shots, backbones = [1], ["resnet50"]
    rows = []
    batches = sorted({1, args.batch})
    for backbone in backbones:
        for shot in shots:
            for size in sizes:
                for batch in batches:
                    row = inference_row(backbone, shot, size, batch, device, args)
                    rows.append(row)
                    print(json.dumps(row))
    train = {n: train_step_ms(rt, device, args.warmup, args.repeats) for n, rt in PATHS.items()}
    frozen = {
        n: train_step_ms(rt, device, args.warmup, args.repeats, batch=8, freeze_bn=True)
        for n, rt in PATHS.items()
    }
    e2e = {}
    if not args.skip_e2e:
        for batch in batches:
            for n, rt in PATHS.items():
                e2e[f"{n}, batch {batch}"] = eval_episodes_per_s(
                    rt, device, args.episodes, batch, args.workers
                )
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "inference": rows,
        "train_step_ms": train,
        "train_speedup": train["plain fp32"] / train["fast"],
        "train_step_ms_freeze_bn_batch8": frozen,
        "train_speedup_freeze_bn_batch8": frozen["plain fp32"] / frozen["fast"],
        "eval_episodes_per_s": e2e,
        "eval_workers": args.workers,
        "sync_warnings": sync_warnings(device) if args.sync_debug else None,
    }
    outs = [args.out]
    if args.docs:
        slug = "".join(c if c.isalnum() else "_" for c in result["device"].lower()).strip("_")
        outs.append(ROOT / "docs" / f"bench_{slug}.json")
    for out in outs:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    print(f"\n{result['device']}, torch {result['torch']}, {result['threads']} threads")
    header = f"{'backbone':<10}{'shot':>5}{'size':>6}{'batch':>6}{'plain ms/ep':>13}"
    print(header + f"{'fast ms/ep':>12}{'x':>6}{'plain MiB':>11}{'fast MiB':>10}  fast precision")
    for r in rows:
        a, b = r["plain fp32"], r["fast"]
        memory = f"{a['peak_memory_mb']:>11.0f}{b['peak_memory_mb']:>10.0f}  {b['precision']}"
        print(f"{r['backbone']:<10}{r['shot']:>5}{r['size']:>6}{r['batch']:>6}"
              f"{a['ms_per_episode']:>13.1f}{b['ms_per_episode']:>12.1f}{r['speedup']:>6.2f}"
              + memory)  # fmt: skip
        if "fast+compile" in r:
            c = r["fast+compile"]
            print(f"{'':<27}fast + torch.compile: {c['ms_per_episode']:.1f} ms/episode, "
                  f"x{a['ms_median'] / c['ms_median']:.2f}, "
                  f"{c['wall_s_with_compilation']:.0f} s with compilation")  # fmt: skip
    print(f"training step (batch 4, 321, authors' BN): plain {train['plain fp32']:.0f} ms, fast "
          f"{train['fast']:.0f} ms, x{result['train_speedup']:.2f}")  # fmt: skip
    print(f"training step (batch 8, 321, freeze_bn): plain {frozen['plain fp32']:.0f} ms, fast "
          f"{frozen['fast']:.0f} ms, x{result['train_speedup_freeze_bn_batch8']:.2f}")  # fmt: skip
    for name, rate in e2e.items():
        print(f"evaluation incl. data (473, {args.workers} workers), {name}: {rate:.1f} episodes/s")
    if args.sync_debug:
        print(f"host syncs in one fast forward: {len(result['sync_warnings'] or [])}")
    print(f"wrote {', '.join(map(str, outs))}")


if __name__ == "__main__":
    main()
