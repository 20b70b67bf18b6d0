"""Tiny networks for tests, built through the package's own config path (`conf/model`)."""

from __future__ import annotations

from functools import cache

import torch
from omegaconf import OmegaConf
from torch import nn

from sdaanet.checkpoint import build_network
from sdaanet.config import compose_config

GROUPS = {
    "backbone": "backbone",
    "shot": "shot",
    "ways": "data.ways",
}


def _value(v: object) -> str:
    if isinstance(v, dict):
        return repr(dict(sorted(v.items())))
    if isinstance(v, list | tuple):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


@cache
def _node(items: tuple[tuple[str, str], ...]) -> dict:
    overrides = []
    for key, value in items:
        if key == "backbone" and value.startswith("{"):
            spec = eval(value)  # a dict written by `_value`: {"name": ..., "freeze_bn": ...}
            overrides.append(f"backbone={spec.pop('name')}")
            overrides += [f"backbone.{k}={_value(v)}" for k, v in spec.items()]
        elif key == "multiclass":
            overrides.append("model=multiclass" if value == "true" else "model=sdaanet")
        else:
            overrides.append(f"{GROUPS.get(key, 'model.' + key)}={value}")
    cfg = compose_config(overrides)
    return OmegaConf.to_container(cfg.model, resolve=True)


def node(cfg: dict) -> dict:
    """The resolved network node of `conf/model` with `cfg`'s settings (keys as the model node's,
    plus `backbone` (a group name), `shot`, `ways`, `ppm_scales` and `multiclass`)."""
    items = tuple(sorted((k, _value(v)) for k, v in cfg.items()))
    if "ways" in cfg and int(cfg["ways"]) > 1 and "multiclass" not in cfg:
        items = tuple(sorted((*items, ("multiclass", "true"))))
    return _node(items)


def build(cfg: dict, seed: int = 0) -> nn.Module:
    """A network of the model node with `cfg`'s settings (random backbone, no warning)."""
    torch.manual_seed(seed)
    return build_network(node(cfg))
