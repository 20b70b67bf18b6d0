"""The networks: SD-AANet, the PFENet baseline (both modules off), the multi-class head.

Build one from its config node: ``hydra.utils.instantiate(cfg.model)`` (``conf/model/*.yaml``),
or from a checkpoint: ``sdaanet.checkpoint.network_from_checkpoint(path)``.
"""

from __future__ import annotations

from .backbones import BACKBONE_NAMES, Backbone, build_backbone, load_backbone_weights
from .layers import masked_gap
from .multiclass import MultiClassSDAANet
from .network import size_problem, summary_line, training_only
from .sdaanet import AUTHORS_KEY_PREFIXES, SDAANet, SDAANetTrace, TrainOutput

__all__ = [
    "AUTHORS_KEY_PREFIXES",
    "BACKBONE_NAMES",
    "Backbone",
    "MultiClassSDAANet",
    "SDAANet",
    "SDAANetTrace",
    "TrainOutput",
    "build_backbone",
    "load_backbone_weights",
    "masked_gap",
    "size_problem",
    "summary_line",
    "training_only",
]
