"""One evaluation of a checkpoint, as `sdaanet-eval` and a training run's end-of-run evaluation
run it: a settled `sdaanet.plan.EvaluationPlan`, its episodic test once per seed (one datamodule,
re-seeded), and the record (`sdaanet.records`) it returns.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from sdaanet.build import build_datamodule, build_module, build_trainer
from sdaanet.checkpoint import network_from_checkpoint
from sdaanet.console import setup_lines_once
from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.lit import FewShotSegmentationModule
from sdaanet.plan import EvaluationPlan
from sdaanet.protocols import TestProtocol
from sdaanet.records import RECORD_FORMAT, configuration, summarise
from sdaanet.scoring import SCORING


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


def _seed_loggers(cfg: DictConfig, seed: int, prefix: str) -> dict[str, Any]:
    """One CSV log folder per seed (`csv/<prefix>seed<seed>/`), so no seed's log replaces
    another's; other loggers (W&B) belong to training and are left out."""
    loggers = {}
    for name, node in (cfg.get("logger") or {}).items():
        if node and str(node.get("_target_", "")).endswith("CSVLogger"):
            loggers[name] = OmegaConf.merge(node, {"version": f"{prefix}seed{seed}"})
    return loggers


def _test(
    plan: EvaluationPlan,
    module: FewShotSegmentationModule,
    datamodule: EpisodicDataModule,
    log_prefix: str,
) -> list[dict[str, Any]]:
    """The test of `module` once per seed of the plan, on `datamodule`'s episodes drawn from
    that seed; the per-seed results."""
    per_seed = []
    for seed in plan.seeds:
        datamodule.reseed(seed)
        L.seed_everything(plan.cfg.seed, workers=True, verbose=False)
        with setup_lines_once(first=seed == plan.seeds[0]):
            trainer = build_trainer(plan.cfg, loggers=_seed_loggers(plan.cfg, seed, log_prefix))
            trainer.test(module, datamodule=datamodule, verbose=False)
        per_seed.append({"seed": seed, **module.test_results})
    return per_seed


def evaluate(
    plan: EvaluationPlan,
    *,
    configuration_of: dict[str, Any] | None = None,
    validation: float | None = None,
    log_prefix: str = "",
) -> dict[str, Any]:
    """Test the plan's checkpoint over its seeds; returns the evaluation record (not written).

    `configuration_of`: the record's configuration (default: the checkpoint's training
    configuration with the plan's overrides winning). `validation`: the training run's selection
    score. `log_prefix`: of the per-seed CSV log folders."""
    print(plan.took)
    net, _ = network_from_checkpoint(plan.path, plan.checkpoint)
    cfg, protocol = plan.cfg, plan.protocol
    datamodule = build_datamodule(cfg, stage="test")
    module = build_module(
        cfg, datamodule, net=net, scoring=protocol.scoring,
        ignore_boundary=protocol.ignore_boundary, multiscale=list(cfg.eval.multiscale or []),
        kshot=cfg.eval.get("kshot"),
    )  # fmt: skip
    print(_header(datamodule, protocol, plan.trained_size))
    per_seed = _test(plan, module, datamodule, log_prefix)
    record = _record(plan, datamodule, per_seed)
    record["configuration"] = configuration_of or configuration(
        plan.info.get("configuration"), plan.overrides
    )
    record["validation"] = {"class_miou": validation} if validation is not None else None
    return record


def _record(
    plan: EvaluationPlan, datamodule: EpisodicDataModule, per_seed: list[dict[str, Any]]
) -> dict[str, Any]:
    """The evaluation record (`sdaanet.records`), its configuration and validation to fill."""
    cfg, protocol = plan.cfg, plan.protocol
    test_classes = datamodule.split_classes("test")
    paper = cfg.get("paper")
    return {
        "format": RECORD_FORMAT,
        "evaluated_at": datetime.now(timezone.utc).isoformat(),
        "checkpoint": str(plan.path),
        "run_dir": str(cfg.paths.output_dir),
        "protocol": {
            "dataset": datamodule.name,
            "fold": datamodule.fold,
            "folds": getattr(datamodule, "num_folds", None),
            "shot": datamodule.shot,
            "ways": datamodule.ways,
            "episodes": datamodule.val_episodes,
            "seeds": plan.seeds,
            "input_size": datamodule.val_size,
            "val_transform": datamodule.val_transform,
            "label_mode": protocol.label_mode,
            "preset": protocol.preset,
            "scored_on": SCORING[protocol.scoring],
            "ignore_255": protocol.ignore_boundary,
            "aggregate": protocol.aggregate,
            "multiscale": list(cfg.eval.multiscale or []) or None,
            "kshot": cfg.eval.get("kshot"),
            "trained_shot": int(plan.info["shot"]),
            "checkpoint_selected_on": plan.selected_on,
        },
        "configuration": None,
        "paper": OmegaConf.to_container(paper, resolve=True) if paper else None,
        "plumbing_only": bool(plan.info.get("plumbing_only") or cfg.get("plumbing_only")),
        "validation": None,
        "classes": [datamodule.class_names.get(c, str(c)) for c in test_classes],
        "class_ids": test_classes,
        "seeds": per_seed,
        "summary": summarise(per_seed),
    }
