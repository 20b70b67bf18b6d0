"""LightningModule: the network, the loss of Eq. 12 (+ the authors' auxiliary heads), SGD with
per-iteration poly decay, and episodic validation/test metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdaanet.metrics import ClassMIoU, FBIoU

LOSS_TERMS = ("main", "aux", "kd", "saam")


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite during training."""


class FewShotSegmentationModule(L.LightningModule):
    """Trains any network that follows docs/interfaces.md.

    L = CE + aux_weight * mean(aux CE) + alpha * L_KD + beta * L_SAAM (Eq. 12 plus D13).
    `model_cfg` is stored in the checkpoint so a checkpoint names the architecture it holds.

    Evaluation: `n_val_classes` (default `n_test_classes`) sizes the validation metric, which
    differs when checkpoints are selected on held-out base-class episodes (`selection="base"`).
    `score_original` scores at the original label size (batches carry `raw_query_mask`); the
    prediction's image region (`raw_valid`) is resized bilinearly to it. `multiscale` (Table V):
    the network also runs on the inputs resized to each listed side and the softmax outputs,
    resized to the input size, are summed. `input_size` (the evaluation side) is only recorded,
    so that `sdaanet-predict` runs a checkpoint at the size it was evaluated at.
    """

    def __init__(
        self,
        net: nn.Module,
        model_cfg: dict[str, Any],
        n_test_classes: int,
        name: str = "sgd",
        lr: float = 0.025,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        poly_power: float = 0.9,
        n_val_classes: int | None = None,
        selection: str = "novel",
        score_original: bool = False,
        multiscale: Sequence[int] | None = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        if name not in ("sgd", "adamw"):
            raise ValueError(f"optimizer.name must be 'sgd' (the paper's) or 'adamw', got {name!r}")
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.weights = {
            "main": 1.0,
            "aux": float(model_cfg.get("aux_weight", 1.0)),
            "kd": float(model_cfg.get("alpha", 50.0)),
            "saam": float(model_cfg.get("beta", 0.5)),
        }
        self.score_original = bool(score_original)
        self.multiscale = tuple(int(s) for s in multiscale) if multiscale else ()
        self.val_miou = ClassMIoU(n_val_classes or n_test_classes)
        self.val_fbiou = FBIoU()
        self.test_miou = ClassMIoU(n_test_classes)
        self.test_fbiou = FBIoU()
        self.test_results: dict[str, Any] = {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store torch's RNG states (dropout draws from them; the episodes and augmentations
        are seeded per episode), so a resumed run goes on exactly as an uninterrupted one."""
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if not states:  # checkpoints written before the RNG states were stored
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits (B, 2, H, W) for an episode batch; never reads the query mask."""
        return self.net(batch["query_image"], batch["support_images"], batch["support_masks"])

    def predict(self, batch: dict[str, Tensor]) -> Tensor:
        """Scores (B, C, H, W) whose argmax is the prediction: the logits, or with `multiscale`
        the sum of the softmax outputs of every scale, each resized to the input size (Table V)."""
        if not self.multiscale:
            return self(batch)
        query, images, masks = batch["query_image"], batch["support_images"], batch["support_masks"]
        size = query.shape[-2:]
        total = 0
        for side in self.multiscale:
            if (side, side) == tuple(size):
                scores = self.net(query, images, masks)
            else:
                resize = (side, side)
                scores = self.net(
                    F.interpolate(query, resize, mode="bilinear", align_corners=True),
                    F.interpolate(
                        images.flatten(0, 1), resize, mode="bilinear", align_corners=True
                    ).unflatten(0, images.shape[:2]),
                    F.interpolate(masks.float(), resize, mode="nearest").long(),
                )
                scores = F.interpolate(scores, size, mode="bilinear", align_corners=True)
            total = total + scores.softmax(1)
        return total

    @staticmethod
    def check_episodes(batch: dict[str, Tensor]) -> None:
        """N-way batches must name N distinct classes per episode."""
        ids = batch.get("class_id")
        if ids is not None and ids.dim() == 2 and ids.shape[1] > 1:
            repeated = (ids.sort(1).values.diff(dim=1) == 0).any(1)
            if bool(repeated.any()):
                b = int(repeated.nonzero()[0])
                raise ValueError(
                    f"episode {b} of the batch has two supports of the same class "
                    f"({ids[b].tolist()}); N-way episodes need N distinct classes"
                )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.check_episodes(batch)
        out = self.net(
            batch["query_image"],
            batch["support_images"],
            batch["support_masks"],
            batch["query_mask"],
        )
        terms = {name: getattr(out, name) for name in LOSS_TERMS}
        self._check_finite(terms, batch)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        bs = batch["query_image"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value, batch_size=bs)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        return loss

    def _check_finite(self, terms: dict[str, Tensor], batch: dict[str, Tensor]) -> None:
        """Stop at a non-finite loss term, naming the step, the term and the episodes' files;
        the exception ends the fit before any checkpoint is written over the last good one."""
        if bool(torch.isfinite(torch.stack(list(terms.values()))).all()):  # one sync per step
            return
        bad = [name for name, value in terms.items() if not bool(torch.isfinite(value).all())]
        keys = batch["episode_index"].tolist() if "episode_index" in batch else []
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        dataset = getattr(datamodule, "train_set", None)
        episodes = "; ".join(dataset.describe_episode(k) for k in keys) if dataset else keys
        values = ", ".join(f"{name}={terms[name].item()}" for name in bad)
        raise NonFiniteLossError(
            f"training step {self.global_step}: non-finite loss term {values}; {episodes}. "
            "The last checkpoint was kept: check these files, or lower optimizer.lr and resume "
            "with ckpt_path=<run>/checkpoints/last.ckpt"
        )

    def _evaluate(self, batch: dict[str, Tensor], miou: ClassMIoU, fbiou: FBIoU) -> None:
        self.check_episodes(batch)
        scores = self.predict(batch)
        if not self.score_original:
            preds = scores.argmax(1)
            miou.update(preds, batch["query_mask"], batch["class_index"])
            fbiou.update(preds, batch["query_mask"])
            return
        if "raw_query_mask" not in batch:
            raise ValueError("score_original needs data.return_raw_label=true")
        sizes = zip(batch["raw_size"].tolist(), batch["raw_valid"].tolist(), strict=True)
        for b, ((h, w), (vh, vw)) in enumerate(sizes):
            region = scores[b : b + 1, :, :vh, :vw]
            pred = F.interpolate(region, (h, w), mode="bilinear", align_corners=True).argmax(1)
            target = batch["raw_query_mask"][b : b + 1, :h, :w]
            miou.update(pred, target, batch["class_index"][b : b + 1])  # (1,) or (1, N)
            fbiou.update(pred, target)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_miou, self.val_fbiou)

    def on_validation_epoch_end(self) -> None:
        self.log("val/class_miou", self.val_miou.compute(), prog_bar=True, sync_dist=False)
        self.log("val/fbiou", self.val_fbiou.compute(), prog_bar=True, sync_dist=False)
        self.val_miou.reset()
        self.val_fbiou.reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_miou, self.test_fbiou)

    def on_test_epoch_end(self) -> None:
        self.test_results = {
            "class_miou": float(self.test_miou.compute()),
            "fbiou": float(self.test_fbiou.compute()),
            "per_class_iou": self.test_miou.per_class().tolist(),
        }
        self.log("test/class_miou", self.test_miou.compute(), sync_dist=False)
        self.log("test/fbiou", self.test_fbiou.compute(), sync_dist=False)
        self.test_miou.reset()
        self.test_fbiou.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD over the non-backbone parameters; lr_i = lr * (1 - (i+1)/max_iter)^power (D17).

        `name="adamw"` (betas (momentum, 0.999)) converges in fewer steps: the CPU demo uses it.
        """
        hp = self.hparams
        params = [p for p in self.net.learnable_parameters() if p.requires_grad]
        if hp.name == "adamw":
            optimizer = torch.optim.AdamW(
                params, lr=hp.lr, betas=(hp.momentum, 0.999), weight_decay=hp.weight_decay
            )
        else:
            optimizer = torch.optim.SGD(
                params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        max_iter = max(int(self.trainer.estimated_stepping_batches), 1)

        def poly(step: int) -> float:
            return max(1.0 - (step + 1) / max_iter, 0.0) ** hp.poly_power

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
