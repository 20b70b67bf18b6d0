"""Builders shared by the entry points: the episodic datamodule, the LightningModule and the
Trainer of a composed configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from omegaconf import DictConfig, OmegaConf
from torch import nn

from sdaanet.checkpoint import AtomicCheckpointIO, build_network, describe
from sdaanet.console import on_terminal, quiet_lightning
from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.errors import DataConfigError, DataError, one_line
from sdaanet.lit import FewShotSegmentationModule
from sdaanet.runtime import apply_runtime, lightning_precision, trainer_device


def build_datamodule(cfg: DictConfig, stage: str | None = None) -> EpisodicDataModule:
    """The episodic datamodule of `cfg.data`; raises DataNotFoundError before any heavy work.

    `stage=None` checks the files of every split, `"test"` only those of the test episodes.
    """
    try:
        datamodule = instantiate(cfg.data, shot=cfg.shot, seed=cfg.seed, _recursive_=False)
        datamodule.check(stage)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ValueError) and not isinstance(cause, DataError):
            raise DataConfigError(f"data config: {one_line(cause)}") from cause
        raise cause or exc from None
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataConfigError(f"data config: {one_line(exc)}") from exc
    n_novel = datamodule.n_test_classes
    if datamodule.ways > n_novel:
        raise DataConfigError(
            f"data config: ways={datamodule.ways} but fold {datamodule.fold} has only {n_novel} "
            f"novel classes; use data.ways <= {n_novel}"
        )
    return datamodule


def build_module(
    cfg: DictConfig,
    datamodule: EpisodicDataModule | None = None,
    net: nn.Module | None = None,
    **evaluation: Any,
) -> FewShotSegmentationModule:
    """The network (`net`, else `cfg.model` instantiated) on the configured runtime path, in the
    LightningModule with the configured optimiser and schedule; the metrics average over the
    fold's classes (`datamodule`, else `cfg.data`'s). `evaluation`: `score_original`,
    `multiscale` (see `FewShotSegmentationModule`)."""
    if datamodule is None:
        datamodule = instantiate(cfg.data, shot=cfg.shot, seed=cfg.seed, _recursive_=False)
    if net is None:
        node = OmegaConf.to_container(cfg.model, resolve=True)
        net = build_network(node, backbone_weights=True)
    device = trainer_device(cfg.trainer.get("accelerator", "auto"))
    return FewShotSegmentationModule(
        apply_runtime(net, cfg.get("runtime"), device),
        n_test_classes=datamodule.n_test_classes,
        n_val_classes=datamodule.n_val_classes,
        optimizer=instantiate(cfg.optimizer) if cfg.get("optimizer") else None,
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        description=describe(cfg, datamodule.selection),
        selection=datamodule.selection,
        **evaluation,
    )


def build_trainer(cfg: DictConfig, loggers: Mapping[str, Any] | None = None) -> L.Trainer:
    """The Trainer of `cfg.trainer` with the configured callbacks and loggers (`loggers`: these
    logger nodes instead)."""
    quiet_lightning()
    nodes = cfg.get("logger") if loggers is None else loggers
    loggers = [instantiate(c) for c in (nodes or {}).values() if c]
    cbs = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    precision = lightning_precision(
        cfg.get("runtime"), cfg.trainer.get("accelerator", "auto"), cfg.trainer.precision
    )
    # callbacks.progress_bar=null: no progress display (Lightning would add Rich's bar); off a
    # terminal the model summary is a plain table (Lightning's is Rich's)
    has_bar = any(isinstance(cb, ProgressBar) for cb in cbs)
    rich_summary = cfg.trainer.get("enable_model_summary", True)
    if rich_summary and not on_terminal():
        cbs.append(ModelSummary())
        rich_summary = False
    return instantiate(
        cfg.trainer,
        precision=precision,
        enable_progress_bar=cfg.trainer.get("enable_progress_bar", has_bar),
        enable_model_summary=rich_summary,
        logger=loggers or False,
        callbacks=cbs,
        plugins=[AtomicCheckpointIO()],
    )
