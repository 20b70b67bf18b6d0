"""Lightning loggers of the package: a CSV log that a resumed run continues."""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

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
