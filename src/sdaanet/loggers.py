"""Lightning loggers of the package: a CSV log that a resumed run continues, and W&B without
its console noise."""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from sdaanet.io import atomic_open


class ResumingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing `metrics.csv` is continued instead of
    deleted: its rows before the first step this process logs are kept (a resumed run logs the
    later ones again), and the first save rewrites the file atomically, kept rows first."""

    def __init__(self, log_dir: str) -> None:
        self._rewrite: bool | None = None  # None: nothing logged yet; True: first save due
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes `metrics.csv` here; it is kept until the first save."""

    def _rows_before(self, step: int) -> list[dict[str, Any]]:
        if not self._fs.isfile(self.metrics_file_path):
            return []
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        return [
            {k: v for k, v in row.items() if v != ""}
            for row in rows
            if int(float(row.get("step") or 0)) < step
        ]

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if self._rewrite is None:
            self.metrics = [*self._rows_before(step or 0), *self.metrics]
            self._rewrite = True
        super().log_metrics(metrics_dict, step)

    def save(self) -> None:
        if not (self._rewrite and self.metrics):
            return super().save()
        self._record_new_keys()
        with atomic_open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []
        self._rewrite = False  # later saves append


class ResumingCSVLogger(CSVLogger):
    """Lightning's CSVLogger with `ResumingWriter`: after a resume or a requeue, `metrics.csv`
    still holds the steps before the cut, each once."""

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Flush at every checkpoint: the log holds every step a resumed run will not repeat."""
        self.save()

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumingWriter(log_dir=self.log_dir)
        return self._experiment


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, quiet and finished with its run.

    - no `anonymous` setting (Lightning passes `anonymous=None`, which wandb >= 0.19 answers
      with "The anonymous setting has no effect");
    - `save_dir` exists before `wandb.init` (a run folder not made yet, as `make demo`'s, gave
      "git root ... does not exist"; W&B still records the commit of a run inside a clone);
    - the run is finished when training ends: its summary goes through wandb's printer, which
      drops colours off a terminal (finished at exit, wandb-core wrote ANSI codes to stdout),
      and the next job of a multirun starts a run of its own instead of reusing this one.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None and self._save_dir:
            os.makedirs(self._save_dir, exist_ok=True)
        return super().experiment

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None:
            self._experiment.finish(exit_code=1 if status == "failed" else 0)
