"""An evaluation, settled once: `settle` turns (the composed configuration with its command-line
overrides, the checkpoint, the test protocol) into one frozen `EvaluationPlan` (the network,
shot, data settings, protocol and seeds), which `sdaanet.evaluation.evaluate` runs and the eval
precheck checks. The checkpoint is read here, once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from sdaanet.checkpoint import description, read_checkpoint, selected_on, summary, training_only
from sdaanet.errors import CheckpointMismatchError, ConfigError
from sdaanet.models.backbones import TRAINING_ONLY as BACKBONE_TRAINING_ONLY
from sdaanet.protocols import TestProtocol, apply_protocol
from sdaanet.records import parse_override

ARCHITECTURE_KEYS = ("model", "backbone", "experiment")  # overrides that name the network


@dataclass(frozen=True)
class EvaluationPlan:
    """One evaluation of one checkpoint, settled: `cfg` (read-only) holds the stored network,
    the shot and the data settings the test runs at; `protocol` what is scored and the seeds."""

    path: Path  # the checkpoint file
    checkpoint: Mapping[str, Any]  # its contents, as read
    info: Mapping[str, Any]  # its description (`sdaanet.checkpoint.description`)
    cfg: DictConfig
    protocol: TestProtocol
    took: str  # the line that says what was taken from the checkpoint
    overrides: tuple[str, ...] | None  # the command line's; None: all of `cfg` was explicit

    @property
    def seeds(self) -> list[int]:
        return self.protocol.seeds

    @property
    def selected_on(self) -> str:
        """How the checkpoint was chosen (`sdaanet.checkpoint.selected_on`)."""
        return selected_on(self.path, self.checkpoint, self.info["selection"])

    @property
    def trained_size(self) -> int | None:
        """The input side the checkpoint was trained at (None if unrecorded)."""
        return (self.info["data"] or {}).get("train_size", self.info["input_size"])


def settle(
    cfg: DictConfig,
    path: str | Path,
    overrides: Sequence[str] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> EvaluationPlan:
    """The evaluation of checkpoint `path` (read here unless `checkpoint` is given; a reading the
    precheck kept is reused) as `cfg` and its command-line `overrides` ask: the network and shot
    are the checkpoint's (an override contradicting them is refused, naming both values), the data
    settings the checkpoint's unless the command line chose them (`data=`, `experiment=`; a
    `data.<key>=` wins for its key), the test's `data.val_*` the protocol's. `cfg` is left as it
    is. `overrides` None: every setting of `cfg` is explicit, the data included."""
    path = Path(path)
    checkpoint = read_checkpoint(path, reuse=True) if checkpoint is None else checkpoint
    info = description(checkpoint, path)
    keys = None if overrides is None else [parse_override(o)[0] for o in overrides if "=" in o]
    shot = _shot(cfg, info, path, keys)
    _check_network(cfg, info, path, keys)
    data, took = _data(cfg, info, keys)
    settled = copy.deepcopy(cfg)
    with open_dict(settled):
        settled.model = info["network"]
        settled.backbone = info["network"].get("backbone")
        settled.shot = shot
        if data is not None:
            settled.data = data
    settled, protocol = apply_protocol(settled)
    OmegaConf.set_readonly(settled, True)
    took = f"network {summary(info['network'])}, {int(info['shot'])}-shot{_kshot(cfg)}; {took}"
    return EvaluationPlan(
        path=path, checkpoint=checkpoint, info=info, cfg=settled, protocol=protocol,
        took=f"from checkpoint {path}: {took}",
        overrides=None if overrides is None else tuple(overrides),
    )  # fmt: skip


def _kshot(cfg: DictConfig) -> str:
    kshot = OmegaConf.select(cfg, "eval.kshot", default=None)
    return f" tested at {int(cfg.shot)} shots by {kshot}" if kshot else ""


def _shot(cfg: DictConfig, info: Mapping[str, Any], path: Path, keys: list[str] | None) -> int:
    """The shot the test runs at: the checkpoint's, or with `eval.kshot` the configured one
    (more than the checkpoint's)."""
    kshot = OmegaConf.select(cfg, "eval.kshot", default=None)
    shot, trained = int(cfg.shot), int(info["shot"])
    if kshot and shot <= trained:
        raise ConfigError(
            f"eval.kshot={kshot} tests checkpoint {path} ({trained}-shot) at more shots: pass "
            f"shot=K with K > {trained}, e.g. shot=5"
        )
    if shot != trained and (keys is None or "shot" in keys) and not kshot:
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained {trained}-shot but shot={shot} is configured: pass "
            f"shot={trained}, a {shot}-shot checkpoint, or eval.kshot=fusion|voting to test it "
            f"at {shot} shots"
        )
    return shot if kshot else trained


def _differences(
    composed: Any, stored: Any, prefix: str, free: frozenset[str]
) -> list[tuple[str, Any, Any]]:
    """(key, configured, stored) for every architecture key that differs; the network's
    training-only arguments (`free`) and the backbone's are skipped."""
    if isinstance(composed, dict) and isinstance(stored, dict):
        out = []
        for key in sorted(set(composed) | set(stored)):
            if prefix == "model" and key in free:
                continue
            if prefix == "model.backbone" and key in BACKBONE_TRAINING_ONLY:
                continue
            out += _differences(composed.get(key), stored.get(key), f"{prefix}.{key}", free)
        return out
    same = composed == stored or (
        isinstance(composed, list | tuple)
        and isinstance(stored, list | tuple)
        and [float(x) for x in composed] == [float(x) for x in stored]
    )
    return [] if same else [(prefix, composed, stored)]


def _check_network(
    cfg: DictConfig, info: Mapping[str, Any], path: Path, keys: list[str] | None
) -> None:
    """Refuse a network setting the command line names (all of them with `keys` None) that
    differs from the stored network."""
    composed = OmegaConf.to_container(cfg.model, resolve=True)
    if OmegaConf.select(cfg, "eval.kshot", default=None):
        composed["shot"] = int(info["shot"])  # the data's K, not the network's
    free = training_only(info["network"])
    for key, configured, stored in _differences(composed, info["network"], "model", free):
        short = key.removeprefix("model.")
        named = keys is None or any(
            k in ARCHITECTURE_KEYS or k == key or k == short or key.startswith(f"{k}.")
            for k in keys
        )
        if named:
            raise CheckpointMismatchError(
                f"{key.replace('model.backbone', 'backbone')}={configured} contradicts checkpoint "
                f"{path}, which holds {stored}: drop the override, or pass a checkpoint trained "
                "with it"
            )


def _data(
    cfg: DictConfig, info: Mapping[str, Any], keys: list[str] | None
) -> tuple[DictConfig | None, str]:
    """The data settings the test starts from (None: `cfg`'s), and the words for them: the
    checkpoint's, each `data.<key>=` of the command line winning, unless the command line chose
    the data (`data=`, `experiment=`) or the checkpoint records none."""
    if info["data"] is None:
        return None, "data from the configuration (this checkpoint's format records none)"
    if keys is None:
        return None, "data from the configuration"
    if any(k in ("data", "experiment") for k in keys):
        return None, "data from the configuration (chosen on the command line)"
    data = OmegaConf.create(info["data"])
    named = [k for k in keys if k.startswith("data.")]
    for key in named:
        OmegaConf.update(
            data, key.removeprefix("data."), OmegaConf.select(cfg, key), force_add=True
        )
    took = f"data {data.get('_target_', '?').rsplit('.', 1)[-1]} fold {data.fold} as trained"
    return data, took + (f" except {', '.join(named)}" if named else "")
