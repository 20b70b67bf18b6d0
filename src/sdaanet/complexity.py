"""Table III: learnable parameters, inference speed and peak memory of the baseline and SD-AANet.

`sdaanet-eval mode=complexity` (`make complexity`) builds both networks at the same input
(`complexity.size`, `shot`) and, for each, times `complexity.repeats` forward passes after
`complexity.warmup` untimed ones (`torch.inference_mode`, eval mode, a device sync around every
pass on CUDA) and reports the median. Peak memory is CUDA's max allocated bytes on GPU; on CPU it
is the peak resident set size of a fresh process that builds and runs only that network, so the
two numbers do not mix. Weights do not matter here, so none are loaded.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import resource
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sdaanet.models import build_model

PAPER = {  # Table III, RTX 3090, 473x473 1-shot
    "baseline": {"gpu_memory_mb": 2216, "fps": 18.75, "learnable_params": 10.8e6},
    "sdaanet": {"gpu_memory_mb": 2483, "fps": 17.65, "learnable_params": 14.1e6},
}


def count_learnable(net: torch.nn.Module) -> int:
    """Parameters outside the frozen backbone that require grad."""
    return sum(p.numel() for p in net.learnable_parameters() if p.requires_grad)


def _inputs(size: int, shot: int, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    query = torch.randn(batch, 3, size, size, generator=g)
    images = torch.randn(batch, shot, 3, size, size, generator=g)
    masks = torch.zeros(batch, shot, size, size, dtype=torch.int64)
    masks[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return query.to(device), images.to(device), masks.to(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(
    net: torch.nn.Module,
    size: int,
    shot: int,
    device: torch.device,
    warmup: int = 3,
    repeats: int = 10,
    batch: int = 1,
) -> dict[str, Any]:
    """Median forward time (ms), FPS and, on CUDA, max allocated memory (MiB) of `net`."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    net = net.to(device).eval()
    inputs = _inputs(size, shot, batch, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            net(*inputs)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times)
    out = {
        "ms_median": median,
        "ms_min": min(times),
        "ms_max": max(times),
        "fps": 1000.0 / median * batch,
        "repeats": repeats,
        "warmup": warmup,
    }
    if cuda:
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _build(model_cfg: dict) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random backbone weights: speed only
        return build_model(OmegaConf.create(model_cfg))


def _measure_in_child(model_cfg: dict, args: tuple, queue: Any) -> None:
    torch.set_num_threads(args[-1])
    net = _build(model_cfg)
    result = measure(net, *args[:-1])
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def profile(model_cfg: dict, size: int, shot: int, device: torch.device, warmup: int,
            repeats: int, batch: int = 1) -> dict[str, Any]:  # fmt: skip
    """`measure` one network; on CPU in a fresh process so its peak RSS is its own."""
    if device.type == "cuda":
        return measure(_build(model_cfg), size, shot, device, warmup, repeats, batch)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    args = (size, shot, device, warmup, repeats, batch, torch.get_num_threads())
    child = ctx.Process(target=_measure_in_child, args=(model_cfg, args, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def run_complexity(cfg: DictConfig) -> dict[str, Any]:
    """Table III for the baseline (SDPM and SAAM off) and SD-AANet as configured; prints a table
    and writes `cfg.complexity.out` (JSON)."""
    c = cfg.complexity
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if c.device == "auto" else c.device
    )
    sdaanet_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    sdaanet_cfg["backbone"] = {**sdaanet_cfg["backbone"], "weights": None}  # speed only
    models = {
        "baseline": {**sdaanet_cfg, "sdpm": False, "saam": False},
        "sdaanet": {**sdaanet_cfg, "sdpm": True, "saam": True},
    }
    rows = {}
    for name, model_cfg in models.items():
        params = count_learnable(_build(model_cfg))
        timing = profile(model_cfg, c.size, cfg.shot, device, c.warmup, c.repeats, c.batch)
        rows[name] = {"learnable_params": params, **timing}
    record = {
        "table": "III",
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "input_size": c.size,
        "shot": cfg.shot,
        "batch": c.batch,
        "backbone": sdaanet_cfg.get("backbone", {}).get("name"),
        "memory": "CUDA max allocated" if device.type == "cuda" else "peak RSS of the process",
        "results": rows,
        "paper_rtx3090": PAPER,
    }
    out = Path(c.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(f"\nTable III on {record['device']} ({device.type}, {record['threads']} threads), "
          f"{c.size}x{c.size}, {cfg.shot}-shot, batch {c.batch}:")  # fmt: skip
    print(f"  {'method':9s} {'learnable':>11s} {'ms':>9s} {'FPS':>7s} {'peak MiB':>9s}   paper")
    for name, r in rows.items():
        p = PAPER[name]
        print(f"  {name:9s} {r['learnable_params']:>11,d} {r['ms_median']:9.1f} {r['fps']:7.2f} "
              f"{r['peak_memory_mb']:9.0f}   {p['learnable_params'] / 1e6:.1f}M, {p['fps']} FPS, "
              f"{p['gpu_memory_mb']} MB")  # fmt: skip
    print(f"wrote {out}")
    return record
