"""Lightning callbacks of the package."""

from __future__ import annotations

import signal
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException


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
