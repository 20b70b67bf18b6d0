"""Training entry point: `python -m sdaanet.train [overrides]` (console script `sdaanet-train`)."""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, open_dict

from sdaanet.build import build_datamodule, build_module, build_trainer
from sdaanet.callbacks import EXIT_SIGTERM, SaveOnSigterm
from sdaanet.checkpoint import load_compatible, read_checkpoint
from sdaanet.cli import entry_point
from sdaanet.config import CONF_DIR, job_configuration, register_resolvers
from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.errors import ConfigError
from sdaanet.evaluation import evaluate
from sdaanet.layout import last_checkpoint
from sdaanet.lit import FewShotSegmentationModule
from sdaanet.plan import settle
from sdaanet.records import existing_record, metrics_of, skipped, write_record
from sdaanet.sweep import run_app, sweeper_target, task
from sdaanet.validate import check_config, precheck

log = logging.getLogger(__name__)


def resume_path(cfg: DictConfig) -> str | None:
    """`cfg.ckpt_path`, else (with `resume`) the run directory's own `checkpoints/last.ckpt`."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = last_checkpoint(cfg.paths.output_dir)
    if cfg.get("resume") and last.is_file():
        log.info("resuming from %s (resume=true)", last)
        print(f"resuming from {last} (this run directory's last checkpoint)")
        return str(last)
    return None


def fit(
    cfg: DictConfig, datamodule: EpisodicDataModule | None = None
) -> tuple[L.Trainer, FewShotSegmentationModule, L.LightningDataModule]:
    """Seed, build and fit as configured (resuming from `cfg.ckpt_path`, or with `resume` from
    the run directory's last checkpoint)."""
    datamodule = datamodule or build_datamodule(cfg)
    L.seed_everything(cfg.seed, workers=True)
    module = build_module(cfg, datamodule)
    ckpt_path = resume_path(cfg)
    if ckpt_path:  # a clear error, naming the file, before Lightning's resume
        load_compatible(module.net, read_checkpoint(ckpt_path), ckpt_path, cfg.shot)
    trainer = build_trainer(cfg)
    log.info("output dir: %s", cfg.paths.output_dir)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        pass
    if trainer.received_sigterm:  # also when it came during the last batch: stop all the same
        print(stopped_by_sigterm(trainer, cfg.paths.output_dir), flush=True)
        raise SystemExit(EXIT_SIGTERM)
    return trainer, module, datamodule


def stopped_by_sigterm(trainer: L.Trainer, output_dir: str) -> str:
    """The line of a run that SIGTERM stopped: where it resumes from, and how."""
    saved = [cb for cb in trainer.callbacks if isinstance(cb, SaveOnSigterm) and cb.saved_step]
    last = last_checkpoint(output_dir)
    if saved:
        where = f"saved {saved[0].path}"
        last = Path(saved[0].path)
    elif last.is_file():
        where = f"not saved (at an epoch's end); {last} holds the last finished epoch"
    else:
        return f"stopped by SIGTERM at step {trainer.global_step}; no checkpoint saved"
    return (
        f"stopped by SIGTERM at step {trainer.global_step}; {where}; resume with the same "
        f"command in this run directory (resume=true), or with ckpt_path={last}"
    )


def selected_checkpoint(trainer: L.Trainer, cfg: DictConfig) -> tuple[str | None, float | None]:
    """The checkpoint `cfg.test_ckpt` names (best by val/class_miou, else last) and its
    validation score (None for last)."""
    if cfg.get("test_ckpt", "best") == "best":  # check_config allows best or last
        for cb in trainer.checkpoint_callbacks:
            if cb.monitor and cb.best_model_path and Path(cb.best_model_path).is_file():
                score = cb.best_model_score
                return cb.best_model_path, None if score is None else float(score)
    last = last_checkpoint(cfg.paths.output_dir)
    return (str(last), None) if last.is_file() else (None, None)


def evaluate_run(trainer: L.Trainer, cfg: DictConfig) -> dict[str, float]:
    """Evaluate the run's selected checkpoint over `cfg.eval.seeds` as `sdaanet-eval` does and
    write the same record into the run directory."""
    ckpt_path, score = selected_checkpoint(trainer, cfg)
    if ckpt_path is None:
        log.warning("test=true but the run saved no checkpoint: nothing evaluated")
        return {}
    eval_cfg = copy.deepcopy(cfg)
    with open_dict(eval_cfg):
        eval_cfg.callbacks = {"progress_bar": cfg.callbacks.get("progress_bar")}
    plan = settle(eval_cfg, ckpt_path)
    record = evaluate(
        plan, configuration_of=job_configuration(), validation=score, log_prefix="test-"
    )
    if trainer.is_global_zero:
        files = write_record(record, cfg.paths.output_dir)
        print(f"evaluated {ckpt_path}; wrote {', '.join(str(f) for f in files)}")
    return metrics_of(record)


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit, then (with `test`) evaluate the selected checkpoint; returns the final metrics. With
    `resume`, a run directory that holds its evaluation record is not run again."""
    check_config(cfg)
    datamodule = build_datamodule(cfg)  # a bad data setting is an error, finished run or not
    if cfg.get("resume") and cfg.get("test") and (done := existing_record(cfg.paths.output_dir)):
        print(skipped(cfg.paths.output_dir))
        return metrics_of(done)
    trainer, module, datamodule = fit(cfg, datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = [cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.monitor]
    if best and best[0] is not None:  # restored on resume, unlike callback_metrics
        metrics["val/best_class_miou"] = float(best[0])
    if cfg.get("test"):
        metrics.update(evaluate_run(trainer, cfg))
    if trainer.is_global_zero:
        print(written(trainer, cfg.paths.output_dir))
    return metrics


def written(trainer: L.Trainer, output_dir: str) -> str:
    """The line that ends a run: where it wrote its checkpoints and metric logs."""
    ckpts = sorted(
        {cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.best_model_path}
    )
    logs = [
        str(Path(logger.log_dir) / "metrics.csv")
        if isinstance(logger, CSVLogger)
        else f"{logger.save_dir} ({type(logger).__name__})"
        for logger in trainer.loggers
    ]
    return (
        f"run {output_dir}: checkpoints {', '.join(ckpts) or 'none'}; "
        f"logs {', '.join(str(x) for x in logs if x) or 'none'}"
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@task
def _hydra_main(cfg: DictConfig) -> float | None:
    """The best validation class-mIoU (on `data.selection`'s split): a sweeper's objective. In a
    multirun, a failed job leaves `failed.json` and the sweep goes on (`sdaanet.sweep`)."""
    metrics = run(cfg)
    value = metrics.get("val/best_class_miou", metrics.get("val/class_miou"))
    if value is None and sweeper_target().endswith(".OptunaSweeper"):
        raise ConfigError(
            "no val/class_miou: validation did not run (check trainer.limit_val_batches and "
            "data.val_episodes)"
        )
    return value


def main() -> None:
    register_resolvers()
    entry_point(precheck)("train", sys.argv[1:])  # one line, before Hydra makes a run folder
    run_app(_hydra_main, sys.argv[1:])


if __name__ == "__main__":
    main()
