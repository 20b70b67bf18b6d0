"""Table III: learnable parameters, inference speed and peak memory of the baseline and SD-AANet.

`sdaanet-complexity [overrides]` (`python -m sdaanet.complexity`, `make complexity`; its config:
`conf/complexity.yaml`) builds both networks at the same input (`complexity.size`, `shot`) and,
for each, times `complexity.repeats` forward passes after `complexity.warmup` untimed ones
(`torch.inference_mode`, eval mode, a device sync around every pass on CUDA) and reports the
median. Peak memory is CUDA's max allocated bytes on GPU; on CPU it is the peak resident set size
of a fresh Python process that builds and runs only that network, so the two numbers do not mix.
Weights do not matter here, so none are loaded.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from sdaanet.checkpoint import build_network
from sdaanet.cli import entry_point
from sdaanet.config import CONF_DIR, register_resolvers
from sdaanet.io import atomic_write
from sdaanet.runtime import apply_runtime, autocast, resolve_precision, torch_device
from sdaanet.sweep import run_app, task
from sdaanet.validate import precheck

PAPER = {  # Table III, RTX 3090, 473x473, 1-shot
    "baseline": {"gpu_memory_mb": 2216, "fps": 18.75, "learnable_params": 10.8e6},
    "sdaanet": {"gpu_memory_mb": 2483, "fps": 17.65, "learnable_params": 14.1e6},
}


def count_learnable(net: torch.nn.Module) -> int:
    """Table III's learnable parameters: those outside the frozen backbone that require grad."""
    return sum(p.numel() for p in net.learnable_parameters() if p.requires_grad)


def _inputs(size: int, shot: int, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Random query/support images and support masks with a centred foreground square."""
    g = torch.Generator().manual_seed(0)
    query = torch.randn(batch, 3, size, size, generator=g)
    images = torch.randn(batch, shot, 3, size, size, generator=g)
    masks = torch.zeros(batch, shot, size, size, dtype=torch.int64)
    masks[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return query.to(device), images.to(device), masks.to(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (else `platform`)."""
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
    warmup: int,
    repeats: int,
    batch: int = 1,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Table III timing of `net` on one (batch, shot, size) input: `warmup` untimed and `repeats`
    timed eval-mode forwards; ms median/min/max, FPS = batch episodes per median forward.
    `runtime` (conf/runtime/*.yaml keys) switches to the fast path; none: plain fp32 eager.

    `peak_memory_mb` is CUDA's max allocated memory on GPU, and on CPU this process's peak RSS
    (`ru_maxrss`), which is the network's own only in a fresh process (see `profile`).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, {warmup=}")
    net = net.to(device).eval()
    if runtime:
        apply_runtime(net, OmegaConf.create(runtime))
    bf16 = bool(runtime) and resolve_precision(runtime["precision"], device.type) == "bf16"
    inputs = _inputs(size, shot, batch, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode(), autocast(runtime, device):
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
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is KiB on Linux, bytes on macOS
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = rss / (2**20 if sys.platform == "darwin" else 2**10)
    return {
        "ms_median": median,
        "ms_min": min(times),
        "ms_max": max(times),
        "fps": 1000.0 / median * batch,
        "peak_memory_mb": peak,
        "warmup": warmup,
        "repeats": repeats,
        "precision": "bf16" if bf16 else "fp32",
    }


def _build(node: dict[str, Any]) -> torch.nn.Module:
    return build_network(node)  # random backbone weights: speed only


def _child() -> None:
    """Entry point of `profile`'s child process: JSON job in argv[1], JSON result on stdout."""
    job = json.loads(sys.argv[1])
    torch.set_num_threads(job["threads"])
    result = measure(_build(job["model"]), device=torch.device("cpu"), **job["measure"])
    print(json.dumps(result))


def profile(
    model_cfg: dict[str, Any],
    size: int,
    shot: int,
    device: torch.device,
    warmup: int,
    repeats: int,
    batch: int = 1,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`measure` one network built from `model_cfg`; on CPU in a fresh Python process (with this
    process's thread count) so that its peak RSS is the network's own."""
    args = {"size": size, "shot": shot, "warmup": warmup, "repeats": repeats, "batch": batch}
    args["runtime"] = runtime
    if device.type != "cpu":
        return measure(_build(model_cfg), device=device, **args)
    job = json.dumps({"model": model_cfg, "measure": args, "threads": torch.get_num_threads()})
    code = "from sdaanet.complexity import _child; _child()"
    proc = subprocess.run([sys.executable, "-c", code, job], capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"complexity measurement process exited {proc.returncode}: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_complexity(cfg: DictConfig) -> dict[str, Any]:
    """Table III for the baseline (`cfg.model` with SDPM and SAAM off, as `model=pfenet`) and
    SD-AANet (`cfg.model` with both on), 1-way, at `cfg.complexity.size` and `cfg.shot`; prints a
    table next to the paper's numbers, writes `cfg.complexity.out` (JSON) and returns the record."""
    c = cfg.complexity
    device = torch_device(c.device)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model.pop("ways", None)
    backbone = model["backbone"]
    size, shot, batch = int(c.size), int(cfg.shot), int(c.batch)
    model.update(_target_="sdaanet.models.SDAANet", shot=shot)
    models = {
        "baseline": {**model, "sdpm": False, "saam": False},
        "sdaanet": {**model, "sdpm": True, "saam": True},
    }
    rows = {}
    for name, model_cfg in models.items():
        params = count_learnable(_build(model_cfg))
        timing = profile(model_cfg, size, shot, device, int(c.warmup), int(c.repeats), batch)
        rows[name] = {"learnable_params": params, **timing}
    cuda = device.type == "cuda"
    record = {
        "table": "III",
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "input_size": size,
        "shot": shot,
        "batch": batch,
        "backbone": backbone["name"],
        "memory": "CUDA max allocated" if cuda else "peak RSS of a process running only the model",
        "results": rows,
        "paper_rtx3090": PAPER,
    }
    out = atomic_write(c.out, json.dumps(record, indent=2) + "\n")
    mem = "GPU MiB" if cuda else "RSS MiB"
    print(
        f"\nTable III, {backbone['name']}, {size}x{size}, {shot}-shot, batch {batch} on "
        f"{record['device']} ({device.type}, {record['threads']} threads, torch {record['torch']})"
    )
    print(
        f"  {'method':9s} {'learnable':>11s} {'ms':>9s} {'FPS':>7s} {mem:>8s} | "
        f"paper (RTX 3090): learnable   FPS  GPU MB"
    )
    for name, r in rows.items():
        p = PAPER[name]
        print(
            f"  {name:9s} {r['learnable_params']:>11,d} {r['ms_median']:9.1f} {r['fps']:7.2f} "
            f"{r['peak_memory_mb']:8.0f} | {p['learnable_params'] / 1e6:26.1f}M "
            f"{p['fps']:5.2f} {p['gpu_memory_mb']:7d}"
        )
    print(f"wrote {out}")
    return record


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="complexity")
@task
def _hydra_main(cfg: DictConfig) -> None:
    run_complexity(cfg)


def main() -> None:
    """`sdaanet-complexity [overrides]`: Table III (`conf/complexity.yaml`)."""
    register_resolvers()
    entry_point(precheck)("complexity", sys.argv[1:])  # one line, before Hydra makes a run folder
    run_app(_hydra_main, sys.argv[1:])


if __name__ == "__main__":
    main()
