"""Evaluation entry point: `python -m sdaanet.eval ckpt_path=... [overrides]` (`sdaanet-eval`).

Runs the episodic test (the validation episodes of `cfg.data`) on a checkpoint and writes
`metrics.json` into the run directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from sdaanet.checkpoint import CheckpointError, load_network_weights, read_checkpoint
from sdaanet.config import CONF_DIR, register_resolvers
from sdaanet.data.sources import DataConfigError, DataError, DataNotFoundError, one_line
from sdaanet.train import build_datamodule, build_module, build_trainer

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    """Test `cfg.ckpt_path` on the episodic test set; returns and saves the metrics."""
    checkpoint = read_checkpoint(cfg.ckpt_path)
    datamodule = build_datamodule(cfg, stage="test")
    L.seed_everything(cfg.seed, workers=True)
    module = build_module(cfg, datamodule)
    load_network_weights(module.net, checkpoint)
    trainer = build_trainer(cfg)
    trainer.test(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"checkpoint": str(cfg.ckpt_path), "shot": cfg.shot, "fold": cfg.data.fold, **metrics}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(out / "metrics.json")
    log.info("test metrics: %s", metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    except (DataNotFoundError, DataError, DataConfigError, CheckpointError) as exc:
        raise SystemExit(f"error: {one_line(exc)}") from None
    return metrics.get("test/class_miou")


def main() -> None:
    register_resolvers()
    _hydra_main()


if __name__ == "__main__":
    main()
