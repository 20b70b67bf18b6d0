"""Training entry point: `python -m sdaanet.train [overrides]` (console script `sdaanet-train`)."""

from __future__ import annotations

import logging
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sdaanet.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    load_compatible,
    read_checkpoint,
)
from sdaanet.config import CONF_DIR, register_resolvers
from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.data.sources import DataConfigError, DataError, DataNotFoundError, one_line
from sdaanet.lit import FewShotSegmentationModule, NonFiniteLossError
from sdaanet.models import build_model
from sdaanet.runtime import apply_runtime, lightning_precision

log = logging.getLogger(__name__)


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
    cfg: DictConfig, datamodule: EpisodicDataModule | None = None, **evaluation: Any
) -> FewShotSegmentationModule:
    """The network of `cfg.model` wrapped in the LightningModule with the optimiser settings;
    the metrics average over the fold's classes (`datamodule`, else `cfg.data`'s). `evaluation`:
    `score_original`, `multiscale` (see `FewShotSegmentationModule`)."""
    if datamodule is None:
        datamodule = instantiate(cfg.data, shot=cfg.shot, seed=cfg.seed, _recursive_=False)
    return FewShotSegmentationModule(
        apply_runtime(build_model(cfg.model), cfg.get("runtime")),
        model_cfg=OmegaConf.to_container(cfg.model, resolve=True),
        n_test_classes=datamodule.n_test_classes,
        n_val_classes=datamodule.n_val_classes,
        selection=datamodule.selection,
        input_size=cfg.data.get("val_size"),
        **cfg.get("optimizer", {}),
        **evaluation,
    )


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer of `cfg.trainer` with the configured loggers and callbacks."""
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    cbs = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    precision = lightning_precision(
        cfg.get("runtime"), cfg.trainer.get("accelerator", "auto"), cfg.trainer.precision
    )
    return instantiate(
        cfg.trainer,
        precision=precision,
        logger=loggers or False,
        callbacks=cbs,
        plugins=[AtomicCheckpointIO()],
    )


def fit(cfg: DictConfig) -> tuple[L.Trainer, FewShotSegmentationModule, L.LightningDataModule]:
    """Seed, build and fit as configured (resuming from `cfg.ckpt_path` if set)."""
    datamodule = build_datamodule(cfg)
    L.seed_everything(cfg.seed, workers=True)
    module = build_module(cfg, datamodule)
    if cfg.get("ckpt_path"):  # a clear error, naming the file, before Lightning's resume
        load_compatible(module.net, read_checkpoint(cfg.ckpt_path), cfg.ckpt_path, cfg.shot)
    trainer = build_trainer(cfg)
    log.info("output dir: %s", cfg.paths.output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return trainer, module, datamodule


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) as configured; returns the final metrics."""
    trainer, module, datamodule = fit(cfg)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path="best")
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    except (
        DataNotFoundError,
        DataError,
        DataConfigError,
        CheckpointError,
        NonFiniteLossError,
    ) as exc:
        raise SystemExit(f"error: {one_line(exc)}") from None
    return metrics.get("val/class_miou")


def main() -> None:
    register_resolvers()
    _hydra_main()


if __name__ == "__main__":
    main()
