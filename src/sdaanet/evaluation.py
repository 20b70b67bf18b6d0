"""One evaluation of a checkpoint, as `sdaanet-eval` and a training run's end-of-run evaluation
run it: the configuration settled from the checkpoint (`from_checkpoint`), the protocol, the
episodic test once per seed, and the record (`sdaanet.records`) it returns.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from sdaanet.build import build_datamodule, build_module, build_trainer
from sdaanet.checkpoint import (
    network_from_checkpoint,
    read_checkpoint,
    selected_on,
    summary,
    training_only,
)
from sdaanet.console import setup_lines_once
from sdaanet.errors import CheckpointMismatchError, ConfigError
from sdaanet.models.backbones import TRAINING_ONLY as BACKBONE_TRAINING_ONLY
from sdaanet.protocols import TestProtocol, apply_protocol
from sdaanet.records import RECORD_FORMAT, configuration, parse_override, summarise
from sdaanet.scoring import SCORING


def _keys(overrides: Sequence[str]) -> list[str]:
    return [parse_override(o)[0] for o in overrides if "=" in o]


def _differences(
    composed: Any, stored: Any, prefix: str, training_only: frozenset[str]
) -> list[tuple[str, Any, Any]]:
    """(key, configured, stored) for every architecture key that differs; the network's
    `training_only` arguments and the backbone's are skipped."""
    if isinstance(composed, dict) and isinstance(stored, dict):
        out = []
        for key in sorted(set(composed) | set(stored)):
            if prefix == "model" and key in training_only:
                continue
            if prefix == "model.backbone" and key in BACKBONE_TRAINING_ONLY:
                continue
            out += _differences(
                composed.get(key), stored.get(key), f"{prefix}.{key}", training_only
            )
        return out
    same = composed == stored or (
        isinstance(composed, list | tuple)
        and isinstance(stored, list | tuple)
        and [float(x) for x in composed] == [float(x) for x in stored]
    )
    return [] if same else [(prefix, composed, stored)]


def from_checkpoint(
    cfg: DictConfig, info: dict[str, Any], path: str, overrides: Sequence[str] | None
) -> str:
    """Set `cfg`'s network, shot and (unless the command line chose them) data settings from the
    checkpoint's description; returns the line that says what was taken. `overrides` are the
    command-line overrides (None: every setting of `cfg` is explicit, the data included)."""
    keys = _keys(overrides) if overrides is not None else None
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
    composed = OmegaConf.to_container(cfg.model, resolve=True)
    if kshot:
        composed["shot"] = trained  # the data's K, not the network's
    arch_keys = ("model", "backbone", "experiment")
    free = training_only(info["network"])
    for key, configured, stored in _differences(composed, info["network"], "model", free):
        short = key.removeprefix("model.")
        named = keys is None or any(
            k in arch_keys or k == key or k == short or key.startswith(f"{k}.") for k in keys
        )
        if named:
            raise CheckpointMismatchError(
                f"{key.replace('model.backbone', 'backbone')}={configured} contradicts checkpoint "
                f"{path}, which holds {stored}: drop the override, or pass a checkpoint trained "
                "with it"
            )
    with open_dict(cfg):
        cfg.model = info["network"]
        cfg.backbone = info["network"].get("backbone")
        cfg.shot = shot if kshot else trained
    took = f"network {summary(info['network'])}, {trained}-shot"
    if kshot:
        took += f" tested at {shot} shots by {kshot}"
    data_chosen = keys is None or any(k in ("data", "experiment") for k in keys)
    if info["data"] is None:
        took += "; data from the configuration (this checkpoint's format records none)"
    elif keys is None:
        took += "; data from the configuration"
    elif data_chosen:
        took += "; data from the configuration (chosen on the command line)"
    else:
        data = OmegaConf.create(info["data"])
        named = [k for k in keys if k.startswith("data.")]
        for key in named:
            OmegaConf.update(
                data, key.removeprefix("data."), OmegaConf.select(cfg, key), force_add=True
            )
        with open_dict(cfg):
            cfg.data = data
        took += f"; data {data.get('_target_', '?').rsplit('.', 1)[-1]} fold {data.fold}"
        took += f" as trained{' except ' + ', '.join(named) if named else ''}"
    return f"from checkpoint {path}: {took}"


def _header(datamodule: Any, protocol: TestProtocol, trained_size: int | None) -> str:
    """The evaluation's console line; a preset that moves the input off the size the checkpoint
    was trained at (`trained_size`, None if unrecorded) says so, as that alone changes scores."""
    text = (
        f"evaluating {datamodule.name} fold {datamodule.fold}, {datamodule.shot}-shot, "
        f"{datamodule.val_episodes} episodes x {len(protocol.seeds)} seeds {protocol.seeds}, "
        f"input {datamodule.val_size} px ({datamodule.val_transform}), "
    )
    if protocol.preset is None:
        return text + f"label mode {protocol.label_mode}"
    text += f"protocol {protocol.preset}: {protocol.matches}\n  not matched: {protocol.differs}"
    if trained_size and datamodule.val_size != trained_size:
        text += (
            f"\n  {protocol.preset}: evaluating at {datamodule.val_size} px; the checkpoint was "
            f"trained at {trained_size} px"
        )
    return text


def _test_loggers(cfg: DictConfig, seed: int, prefix: str) -> None:
    """One CSV log folder per seed (`csv/<prefix>seed<seed>/`), so no seed's log replaces
    another's; other loggers (W&B) belong to training and are left out."""
    loggers = {}
    for name, node in (cfg.get("logger") or {}).items():
        if node and str(node.get("_target_", "")).endswith("CSVLogger"):
            loggers[name] = OmegaConf.merge(node, {"version": f"{prefix}seed{seed}"})
    with open_dict(cfg):
        cfg.logger = loggers


def evaluate(
    cfg: DictConfig,
    ckpt_path: str | Path,
    overrides: Sequence[str] | None = None,
    *,
    configuration_of: dict[str, Any] | None = None,
    validation: float | None = None,
    log_prefix: str = "",
) -> dict[str, Any]:
    """Test the checkpoint over `cfg.eval.seeds`; returns the evaluation record (not written).

    `overrides`: the command line's (see `from_checkpoint`); None takes `cfg` as explicit.
    `configuration_of`: the record's configuration (default: the checkpoint's training
    configuration with `overrides` winning). `validation`: the training run's selection score."""
    cfg = copy.deepcopy(cfg)
    checkpoint = read_checkpoint(ckpt_path)  # missing or corrupt: fails before data work
    net, info = network_from_checkpoint(ckpt_path, checkpoint)
    print(from_checkpoint(cfg, info, str(ckpt_path), overrides))
    protocol = apply_protocol(cfg)
    seeds = protocol.seeds
    datamodule = build_datamodule(cfg, stage="test")
    multiscale = list(cfg.eval.multiscale or [])
    kshot = cfg.eval.get("kshot")
    module = build_module(
        cfg, datamodule, net=net, scoring=protocol.scoring,
        ignore_boundary=protocol.ignore_boundary, multiscale=multiscale, kshot=kshot,
    )  # fmt: skip
    trained_size = (info["data"] or {}).get("train_size", info["input_size"])
    print(_header(datamodule, protocol, trained_size))
    per_seed = []
    for seed in seeds:
        OmegaConf.update(cfg, "data.val_seed", seed)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        _test_loggers(cfg, seed, log_prefix)
        with setup_lines_once(first=seed == seeds[0]):
            trainer = build_trainer(cfg)
            trainer.test(module, datamodule=build_datamodule(cfg, stage="test"), verbose=False)
        per_seed.append({"seed": seed, **module.test_results})
    test_classes = datamodule.split_classes("test")
    paper = cfg.get("paper")
    return {
        "format": RECORD_FORMAT,
        "evaluated_at": datetime.now(timezone.utc).isoformat(),
        "checkpoint": str(ckpt_path),
        "run_dir": str(cfg.paths.output_dir),
        "protocol": {
            "dataset": datamodule.name,
            "fold": datamodule.fold,
            "folds": getattr(datamodule, "num_folds", None),
            "shot": datamodule.shot,
            "ways": datamodule.ways,
            "episodes": datamodule.val_episodes,
            "seeds": seeds,
            "input_size": datamodule.val_size,
            "val_transform": datamodule.val_transform,
            "label_mode": protocol.label_mode,
            "preset": protocol.preset,
            "scored_on": SCORING[protocol.scoring],
            "ignore_255": protocol.ignore_boundary,
            "aggregate": protocol.aggregate,
            "multiscale": multiscale or None,
            "kshot": kshot,
            "trained_shot": int(info["shot"]),
            "checkpoint_selected_on": selected_on(ckpt_path, checkpoint, info["selection"]),
        },
        "configuration": configuration_of or configuration(info.get("configuration"), overrides),
        "paper": OmegaConf.to_container(paper, resolve=True) if paper else None,
        "plumbing_only": bool(info.get("plumbing_only") or cfg.get("plumbing_only")),
        "validation": {"class_miou": validation} if validation is not None else None,
        "classes": [datamodule.class_names.get(c, str(c)) for c in test_classes],
        "class_ids": test_classes,
        "seeds": per_seed,
        "summary": summarise(per_seed),
    }
