"""Lightning callbacks of the package."""

from __future__ import annotations

import math
import signal
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from sdaanet.console import on_terminal


class RNGState(L.Callback):
    """Stores torch's RNG states in every checkpoint and restores them on resume, so a resumed
    run goes on exactly as an uninterrupted one (dropout draws from them; the episodes and
    augmentations are seeded per episode). A checkpoint saved mid-epoch has them restored again
    at the first training batch: the resumed run's new DataLoader iterator draws from them,
    which the uninterrupted run did at the start of the epoch."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "mid_epoch": trainer.training
            and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch,
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get("rng_states")
        if not states:  # checkpoints written before the RNG states were stored
            return
        _set_rng_states(states)
        self._pending = states if states.get("mid_epoch") else None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is not None:
            _set_rng_states(self._pending)
            self._pending = None


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


EXIT_SIGTERM = 128 + signal.SIGTERM  # the shell's status of a process ended by SIGTERM


class SaveOnSigterm(L.Callback):
    """On SIGTERM (what SLURM and most schedulers send first) Lightning stops training after the
    current batch; this saves `path` (atomically, `AtomicCheckpointIO`) at that step first, so
    `resume=true` or `ckpt_path=` continues exactly. A SIGTERM at an epoch's end (its last batch,
    validation) saves nothing: that epoch's or the previous one's `last.ckpt` is the place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.saved_step: int | None = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if (
            isinstance(exception, SIGTERMException)
            and trainer.training
            and not progress.is_last_batch
        ):
            trainer.save_checkpoint(self.path)
            self.saved_step = trainer.global_step


def progress_bar(every_n_steps: int = 50) -> ProgressBar:
    """Rich's live bar on a terminal; anywhere else (a pipe, a file, a batch job's log), where a
    live bar shows nothing until it ends, `ProgressLines` every `every_n_steps` steps."""
    if on_terminal():
        return RichProgressBar()
    return ProgressLines(every_n_steps)


class ProgressLines(ProgressBar):
    """Plain progress for output that is not a terminal (no ANSI codes, no carriage returns):

        step 50/900  epoch 0  train/loss 0.6214  2.10 s/step
        validation after epoch 0: val/class_miou 0.4123  val/fbiou 0.6011
        test batch 50/125

    A training line every `every_n_steps` optimiser steps and at the last step, a validation
    line after every validation in training, a test line every `every_n_steps` batches."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._since: tuple[float, int] = (0.0, 0)  # (time, step) of the last line

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule, prefix: str) -> str:
        items = self.get_metrics(trainer, pl_module)
        return "  ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in items.items()
            if k.startswith(prefix)
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._since = (time.monotonic(), trainer.global_step)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        if not self._enabled or not (step % self.every_n_steps == 0 or step == total):
            return
        if step == self._since[1]:  # gradient accumulation: this step was printed
            return
        now = time.monotonic()
        rate = (now - self._since[0]) / (step - self._since[1])
        self._since = (now, step)
        total_text = total if math.isfinite(total) else "?"
        metrics = self._metrics(trainer, pl_module, "train/")
        epoch = trainer.current_epoch
        line = f"step {step}/{total_text}  epoch {epoch}  {metrics}  {rate:.2f} s/step"
        self.print(line, flush=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and not trainer.sanity_checking and trainer.state.fn == "fit":
            metrics = self._metrics(trainer, pl_module, "val/")
            self.print(f"validation after epoch {trainer.current_epoch}: {metrics}", flush=True)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        done, total = batch_idx + 1, trainer.num_test_batches[dataloader_idx]
        if self._enabled and done % self.every_n_steps == 0:
            self.print(f"test batch {done}/{total}", flush=True)
