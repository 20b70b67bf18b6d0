"""Tiny networks for tests, built through the package's own config path."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sdaanet.models import build_model


def build(cfg: dict, seed: int = 0) -> nn.Module:
    """A network of the model config `cfg` (random backbone weights, warning silenced)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "backbone .* RANDOM weights")
        return build_model(cfg)
