"""Evaluation entry point: `python -m sdaanet.eval ckpt_path=... [overrides]` (`sdaanet-eval`).

It runs the episodic test of a checkpoint once per seed of `eval.seeds` (the paper averages five
rounds) and reports, per seed and as mean +- std (sample std over seeds):
class-mIoU, FB-IoU and the per-class IoU, with the protocol that produced them. The record goes to
`metrics.json` in the run directory and, as `<checkpoint>-<tag>.json/.csv`, into `eval/` next to
the checkpoint's run.

With only `ckpt_path=` given, the checkpoint is evaluated as it was trained: its network, shot
and data settings come from the checkpoint (one printed line says so); `data=...`,
`experiment=...` or `data.<key>=...` on the command line win for the data, and an override that
contradicts the stored network is refused, naming both values.

Label modes (the `label_mode` group; they override the data's validation settings):

- `data`: as the data config says (for PASCAL/COCO that is the authors' mode).
- `authors`: inputs warped to 473x473, scored on the warped label (D16).
- `paper`: 321 input, aspect kept with zero padding, the prediction of the image region resized
  to the original label size and scored there (Sec. IV-B).
- `resized473`: 473 input, aspect kept, scored on the label resized and padded with it (the †
  rows of Table II).

Table III (parameters, FPS, peak memory) is its own command: `sdaanet-complexity`.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from sdaanet.checkpoint import resolve_checkpoint
from sdaanet.cli import entry_point
from sdaanet.config import CONF_DIR, register_resolvers
from sdaanet.errors import ConfigError
from sdaanet.evaluation import evaluate
from sdaanet.plan import settle
from sdaanet.records import existing_record, metrics_of, print_record, skipped, write_record
from sdaanet.sweep import run_app, task
from sdaanet.validate import check_config, precheck


def run(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict[str, float]:
    """Test `cfg.ckpt_path` (a file, or a training run's directory) over `cfg.eval.seeds`; writes
    the record and returns its mean metrics. With `resume`, a run directory that already holds
    its record is not evaluated again.

    `overrides`: the command line's (see `sdaanet.plan.settle`); None takes `cfg` as
    explicit."""
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"))
    check_config(cfg)
    if cfg.get("resume") and (done := existing_record(cfg.paths.output_dir)):
        print(skipped(cfg.paths.output_dir))
        return metrics_of(done)
    record = evaluate(settle(cfg, ckpt_path, overrides))
    if rank_zero_only.rank == 0:
        written = write_record(record, cfg.paths.output_dir)
        print_record(record)
        print(f"evaluated {ckpt_path}; wrote {', '.join(str(w) for w in written)}")
    return metrics_of(record)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@task
def _hydra_main(cfg: DictConfig) -> float | None:
    return run(cfg, list(HydraConfig.get().overrides.task)).get("test/class_miou")


def _not_complexity(argv: Sequence[str]) -> None:
    """ConfigError for the old `mode=complexity`, naming the command Table III has now."""
    if "mode=complexity" in argv:
        raise ConfigError(
            "Table III has its own command: run sdaanet-complexity [overrides] (make complexity)"
        )


def main() -> None:
    register_resolvers()
    entry_point(_not_complexity)(sys.argv[1:])
    entry_point(precheck)("eval", sys.argv[1:])  # one line, before Hydra makes a run folder
    run_app(_hydra_main, sys.argv[1:])


if __name__ == "__main__":
    main()
