"""The test protocol of an evaluation: a label mode (`label_mode=`), or another codebase's whole
protocol as a preset (`eval/protocol=sdaanet_code|paper|pfenet|hsnet|bam|hdmnet`,
docs/protocols.md).

A preset sets, per dataset, the episode count, the input side and resizing (`data.val_*`), the
label scored (`scoring`, `sdaanet.scoring.SCORING`), whether label 255 is left out, the seeds and
how the runs are aggregated (`mean`, or BAM's and HDMNet's `best_and_mean`). It reproduces the
protocol, not another codebase's episode draws (each preset's `differs` says what is not
matched). This module is the one owner of the test's `data.val_*` settings: the label mode's
are the defaults, a preset's win over them (`test_protocol`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from sdaanet.errors import ConfigError

AGGREGATES = ("mean", "best_and_mean")


@dataclass(frozen=True)
class TestProtocol:
    """What an evaluation scores and how (the record's `protocol` says the same); `data`: the
    `data.val_*` settings it runs at (over the data config's)."""

    preset: str | None  # None: the label mode alone
    label_mode: str
    scoring: str
    ignore_boundary: bool
    seeds: list[int]
    aggregate: str
    matches: str | None = None
    differs: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def by_dataset(value: Any, dataset: str, fallback: Any) -> Any:
    """A preset value: a plain value, or a map by dataset name with an optional `default`;
    `fallback` where the map names neither."""
    if not isinstance(value, dict):
        return fallback if value is None else value
    return value.get(dataset, value.get("default", fallback))


def dataset_name(cfg: DictConfig) -> str:
    """The `name` of the configured datamodule class (`pascal`, `coco`, `synthetic`, ...)."""
    return str(get_class(cfg.data._target_).name)


def test_protocol(cfg: DictConfig) -> TestProtocol:
    """The protocol of `cfg`'s evaluation (`cfg` is only read): the label mode's, or the preset's
    with the label mode's and the data config's settings as its defaults."""
    mode = OmegaConf.to_container(cfg.label_mode, resolve=True)
    seeds = [int(s) for s in cfg.eval.seeds]
    preset = cfg.eval.get("protocol")
    if not preset:
        return TestProtocol(
            None, str(mode["name"]), str(mode["scoring"]), True, seeds, "mean", data=mode["data"]
        )
    p = OmegaConf.to_container(preset, resolve=True)
    if p["aggregate"] not in AGGREGATES:
        raise ConfigError(f"eval.protocol.aggregate={p['aggregate']!r} is not one of mean, "
                          "best_and_mean")  # fmt: skip
    dataset = dataset_name(cfg)
    defaults = {key: cfg.data.get(key) for key in ("val_episodes", "val_size")} | mode["data"]
    data = {
        **mode["data"],
        "val_episodes": by_dataset(p["episodes"], dataset, defaults["val_episodes"]),
        "val_size": by_dataset(p["size"], dataset, defaults["val_size"]),
        "val_transform": p["resize"],
        "return_raw_label": p["scoring"] != "transformed",
    }
    return TestProtocol(
        preset=str(p["name"]),
        label_mode=f"preset {p['name']}",
        scoring=str(p["scoring"]),
        ignore_boundary=bool(by_dataset(p["ignore_boundary"], dataset, True)),
        seeds=[int(s) for s in p["seeds"]],
        aggregate=str(p["aggregate"]),
        matches=p.get("matches"),
        differs=p.get("differs"),
        data=data,
    )


def apply_protocol(cfg: DictConfig) -> tuple[DictConfig, TestProtocol]:
    """A copy of `cfg` whose `data` runs the test as `test_protocol(cfg)` says, and that
    protocol; `cfg` is left as it is."""
    protocol = test_protocol(cfg)
    cfg = copy.deepcopy(cfg)
    for key, value in protocol.data.items():
        OmegaConf.update(cfg, f"data.{key}", value)
    return cfg, protocol
