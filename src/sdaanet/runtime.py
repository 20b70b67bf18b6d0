"""The fast path's switches (`conf/runtime/`): precision, memory format, compilation."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from sdaanet.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); emulated bf16 is far slower."""
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def resolve_precision(precision: str, device: str) -> str:
    """`auto` -> bf16 on CUDA and on CPUs with native bf16, else fp32 (`device`: cpu | cuda)."""
    if precision not in PRECISIONS:
        raise ValueError(f"runtime.precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(runtime: Any, device: torch.device) -> AbstractContextManager:
    """bf16 autocast on `device` where the runtime resolves to bf16, else a no-op context."""
    if runtime is None or resolve_precision(runtime["precision"], device.type) != "bf16":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def trainer_device(accelerator: str) -> str:
    """The device a Lightning `accelerator` setting will use: cuda or cpu."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def torch_device(name: str | torch.device) -> torch.device:
    """The device `name` means: `auto` (cuda if available, else cpu), `cpu`, `cuda` or `cuda:N`;
    ConfigError, in one line saying what to use, for another name or a CUDA device not present."""
    if name == "auto":
        name = trainer_device("auto")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {name!r} is not a device (use cpu or cuda)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use cpu or cuda")
    return device


def lightning_precision(runtime: Any, accelerator: str, default: str) -> str:
    """The Trainer's `precision`: bf16-mixed where the runtime resolves to bf16, else `default`."""
    if runtime is None:
        return default
    bf16 = resolve_precision(runtime.precision, trainer_device(accelerator)) == "bf16"
    return "bf16-mixed" if bf16 else default


COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune")


def compile_mode(mode: str, device: str) -> str:
    """torch.compile's mode: `auto` is `reduce-overhead` on CUDA (CUDA graphs: the fixed-shape
    evaluation replays one captured graph per shape, no kernel launches from Python) and
    `default` on the CPU, which has no graphs to capture."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"runtime.compile_mode={mode!r} is not one of {', '.join(COMPILE_MODES)}")
    if mode == "auto":
        return "reduce-overhead" if device == "cuda" else "default"
    return mode


def apply_runtime(net: nn.Module, runtime: Any, device: str = "cpu") -> nn.Module:
    """Switch `net` to the configured path in place: `fast`, channels_last, torch.compile (in
    `compile_mode` for `device`, cuda or cpu)."""
    if runtime is None:
        return net
    if hasattr(net, "fast"):
        net.fast = bool(runtime.fast)
    if runtime.channels_last:
        net.to(memory_format=torch.channels_last)
    if runtime.compile:
        import torch._inductor.config as inductor

        inductor.freezing = True  # inference graphs: constant weights, BN folded into the convs
        net.compile(mode=compile_mode(runtime.get("compile_mode", "auto"), device))
    return net
