"""Lightning callbacks of the package."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class RNGState(L.Callback):
    """Stores torch's RNG states in every checkpoint and restores them on resume, so a resumed
    run goes on exactly as an uninterrupted one (dropout draws from them; the episodes and
    augmentations are seeded per episode)."""

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get("rng_states")
        if not states:  # checkpoints written before the RNG states were stored
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
