"""A run folder's layout, spelled once: a training run keeps its checkpoints in
`<run>/checkpoints/` (`best-*.ckpt`, `last.ckpt`), an evaluation writes `<run>/metrics.json` and
its records beside the checkpoint's run in `<run>/eval/`. (The Hydra configs name the checkpoint
folder as `${paths.output_dir}/checkpoints`, `conf/callbacks/default.yaml`.)"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = "checkpoints"
BEST = "best-*.ckpt"  # ModelCheckpoint's files of the best validation score
LAST = "last.ckpt"
METRICS = "metrics.json"
EVAL = "eval"


def checkpoints_dir(run: str | Path) -> Path:
    """`<run>/checkpoints`."""
    return Path(run) / CHECKPOINTS


def last_checkpoint(run: str | Path) -> Path:
    """`<run>/checkpoints/last.ckpt`: the run's latest state, where it resumes from."""
    return checkpoints_dir(run) / LAST


def metrics_file(run: str | Path) -> Path:
    """`<run>/metrics.json`: the run's evaluation record."""
    return Path(run) / METRICS


def eval_dir(run: str | Path) -> Path:
    """`<run>/eval`: the records of every evaluation of the run's checkpoints."""
    return Path(run) / EVAL


def run_of(checkpoint: str | Path) -> Path:
    """The run folder of `<run>/checkpoints/x.ckpt`; else the folder holding the checkpoint."""
    parent = Path(checkpoint).resolve().parent
    return parent.parent if parent.name == CHECKPOINTS else parent
