"""Checkpoint files: atomic writes and loading a network's weights with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<path>.tmp` then renames it, so a killed run never leaves a truncated `.ckpt`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = str(path)
        if "://" in path:  # remote filesystems keep Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, or of another architecture."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint holds another architecture than the configured network."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file on CPU; a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (pass ckpt_path=<file>.ckpt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or not a torch file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


def load_network_weights(net: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Load the `net.` part of a Lightning checkpoint into `net`, strictly.

    Raises CheckpointMismatchError naming the missing, unexpected and mis-shaped keys.
    """
    state = checkpoint.get("state_dict", checkpoint)
    prefix = "net."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = net.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = sorted(
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(weights)
        if weights[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        trained = checkpoint.get("hyper_parameters", {}).get("model_cfg", {})
        hint = ""
        if trained:
            backbone = (trained.get("backbone") or {}).get("name")
            hint = (
                f"; the checkpoint holds model={trained.get('name')} backbone={backbone}"
                f" reduce_dim={trained.get('reduce_dim')}: pass the same overrides"
            )
        raise CheckpointMismatchError(
            "checkpoint does not match the configured network: "
            + "; ".join(
                f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for label, keys in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("shape mismatch", shapes),
                )
                if keys
            )
            + hint
        )
    net.load_state_dict(weights, strict=True)


def load_compatible(
    net: nn.Module, checkpoint: dict[str, Any], path: str | Path, shot: int
) -> None:
    """Load the weights of `checkpoint` (read from `path`) into `net`, refusing one trained for
    another shot count or holding another architecture; every error names the file."""
    trained = (checkpoint.get("hyper_parameters") or {}).get("model_cfg") or {}
    k = trained.get("shot")
    if k is not None and int(k) != int(shot):
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained {k}-shot but shot={shot} is configured: pass "
            f"shot={k}, or a {shot}-shot checkpoint"
        )
    try:
        load_network_weights(net, checkpoint)
    except CheckpointMismatchError as exc:
        raise CheckpointMismatchError(f"{path}: {exc}") from None
