"""The SD-AANet network (and the PFENet baseline); see ``docs/interfaces.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .backbones import BACKBONE_NAMES, Backbone, build_backbone, load_backbone_weights
from .layers import masked_gap
from .multiclass import MultiClassSDAANet
from .sdaanet import AUTHORS_KEY_PREFIXES, SDAANet, SDAANetOutput, SDAANetTrace

__all__ = [
    "AUTHORS_KEY_PREFIXES",
    "BACKBONE_NAMES",
    "Backbone",
    "MultiClassSDAANet",
    "SDAANet",
    "SDAANetOutput",
    "SDAANetTrace",
    "build_backbone",
    "build_model",
    "load_backbone_weights",
    "masked_gap",
]


def _to_dict(cfg: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):  # resolves interpolations such as ${backbone} on its root
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise ValueError(f"model config must be a mapping or DictConfig, got {type(cfg).__name__}")


def build_model(cfg: Any) -> SDAANet:
    """Build SDAANet from ``cfg.model`` (``conf/model/*.yaml``; DictConfig or plain mapping);
    ``multiclass: true`` with ``ways`` N >= 2 builds ``MultiClassSDAANet`` (Algorithm 1).

    ``cfg.backbone`` is the backbone node (``name``, ``weights``, ``freeze_bn``) or just a name.
    Loss weights (``alpha``, ``beta``, ``aux_weight``) and ``name`` are not the network's concern.
    """
    c = _to_dict(cfg)
    bb = c.get("backbone", "resnet50")
    bb = {"name": bb} if isinstance(bb, str) else _to_dict(bb)
    ways, multiclass = int(c.get("ways", 1)), bool(c.get("multiclass", False))
    if multiclass != (ways > 1):
        raise ValueError(
            f"model.multiclass={multiclass} with data.ways={ways}: multi-class mode needs both "
            "model.multiclass=true and data.ways >= 2 (experiment=table7_sdaanet sets them)"
        )
    backbone = build_backbone(
        bb["name"], weights=bb.get("weights"), freeze_bn=bool(bb.get("freeze_bn", False))
    )
    extra = {"ways": ways} if multiclass else {}
    return (MultiClassSDAANet if multiclass else SDAANet)(
        backbone,
        **extra,
        shot=int(c.get("shot", 1)),
        ppm_scales=[float(s) for s in c.get("ppm_scales", (60, 30, 15, 8))],
        reduce_dim=int(c.get("reduce_dim", 256)),
        dropout=float(c.get("dropout", 0.5)),
        sdpm=bool(c.get("sdpm", True)),
        saam=bool(c.get("saam", True)),
        kshot_strategy=str(c.get("kshot_strategy", "official")),
        teacher=str(c.get("teacher", "code")),
        query_reweight=str(c.get("query_reweight", "code")),
        kd_temperature=float(c.get("kd_temperature", 5.0)),
        kd_alpha=float(c.get("kd_alpha", 0.9)),
        mask_eps=float(c.get("mask_eps", 5e-4)),
    )
