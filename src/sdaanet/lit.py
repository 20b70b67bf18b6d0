"""LightningModule: any network that returns logits and named loss terms, the terms weighted by
the network's configured `loss_weights`, optimiser and schedule from config, and the episodic
validation/test metrics.

D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from sdaanet.errors import NonFiniteLossError
from sdaanet.layout import last_checkpoint
from sdaanet.metrics import ClassMIoU, FBIoU
from sdaanet.models.inference import inference
from sdaanet.scoring import boundary, check_scoring, scored

FINITE_CHECK_EVERY = 50  # on CUDA: steps between the loss terms' finiteness checks


class PolyLR(torch.optim.lr_scheduler.LambdaLR):
    """Per-iteration poly decay: lr_i = lr * (1 - (i+1)/max_iter)^power (D17)."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_iter: int, power: float) -> None:
        def factor(step: int) -> float:
            return max(1.0 - (step + 1) / max_iter, 0.0) ** power

        super().__init__(optimizer, factor)


class FewShotSegmentationModule(L.LightningModule):
    """Trains and evaluates any network of docs/extending.md.

    Training: the network (train mode, with the query mask) returns ``.logits`` and ``.losses``
    (a dict of named terms); the loss is sum_t w_t * term_t with ``net.loss_weights`` (1 for a
    term it does not list). For SD-AANet that is Eq. 12 plus D13:
    CE + aux_weight * aux + alpha * L_KD + beta * L_SAAM.

    `optimizer(params)` and `scheduler(optimizer, max_iter=...)` are the config's partials
    (``conf/optimizer``, ``conf/scheduler``). `description` (the network node, shot, input size
    and data settings, ``sdaanet.checkpoint.describe``) is stored in every checkpoint.

    Evaluation: `n_val_classes` (default `n_test_classes`) sizes the validation metric, which
    differs when checkpoints are selected on held-out base-class episodes (`selection="base"`).
    `scoring` and `ignore_boundary`: the rules of `sdaanet.scoring` (which label is scored, what
    label 255 counts as). `multiscale` (Table V):
    `sdaanet.models.inference.MultiScale` over the listed sides. `kshot="voting"`: a 1-shot
    network at K shots by HSNet's voting (`ShotVoting`); `"fusion"`/None: the network's own.
    """

    def __init__(
        self,
        net: nn.Module,
        n_test_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        description: Mapping[str, Any] | None = None,
        n_val_classes: int | None = None,
        selection: str = "novel",
        scoring: str = "transformed",
        ignore_boundary: bool = True,
        multiscale: Sequence[int] | None = None,
        kshot: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_weights = {k: float(v) for k, v in getattr(net, "loss_weights", {}).items()}
        self.scoring = check_scoring(scoring)
        self.ignore_boundary = bool(ignore_boundary)
        self.multiscale = tuple(int(side) for side in multiscale or ())
        self.kshot = kshot
        self.val_miou = ClassMIoU(n_val_classes or n_test_classes)
        self.val_fbiou = FBIoU()
        self.test_miou = ClassMIoU(n_test_classes)
        self.test_fbiou = FBIoU()
        self.test_results: dict[str, Any] = {}
        # steps between finiteness checks: 1 on the CPU (free), FINITE_CHECK_EVERY on CUDA,
        # where each check makes the host wait for the GPU (set in on_train_start)
        self.finite_check_every = 1
        self._finite: Tensor | None = None  # all loss terms finite since the last check
        self._unchecked: list[int] = []  # the steps since the last check

    def on_train_start(self) -> None:
        """Warn about modules left in eval mode outside the frozen backbone (Lightning's own
        warning counts the backbone's BatchNorms and is filtered, `sdaanet.console`); check
        the loss terms' finiteness every step on the CPU, every `FINITE_CHECK_EVERY` on CUDA."""
        self.finite_check_every = 1 if self.device.type == "cpu" else FINITE_CHECK_EVERY
        stuck = [
            n
            for n, m in self.net.named_modules()
            if not m.training and n.split(".")[0] != "backbone"
        ]
        if stuck:
            warnings.warn(
                f"{len(stuck)} module(s) outside the backbone are in eval mode at the start of "
                f"training: {', '.join(stuck[:5])}",
                UserWarning,
                stacklevel=2,
            )

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits (B, C, H, W) for an episode batch; never reads the query mask."""
        return self.net(batch["query_image"], batch["support_images"], batch["support_masks"])

    def predict(self, batch: dict[str, Tensor]) -> Tensor:
        """Scores (B, C, H, W) whose argmax is the prediction (the inference policy's output)."""
        infer = inference(self.net, self.multiscale, self.kshot)
        return infer(batch["query_image"], batch["support_images"], batch["support_masks"])

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
        terms = out.losses
        self._check_finite(terms, batch)
        loss = sum(self.loss_weights.get(name, 1.0) * value for name, value in terms.items())
        bs = batch["query_image"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value, batch_size=bs)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        return loss

    def _check_finite(self, terms: dict[str, Tensor], batch: dict[str, Tensor]) -> None:
        """Stop at a non-finite loss term, naming the step(s), the term and the episodes' files.
        Checked every `finite_check_every` steps and before every checkpoint is written, so the
        exception ends the fit before a checkpoint is written over the last good one."""
        finite = torch.isfinite(torch.stack([v.detach() for v in terms.values()])).all()
        self._finite = finite if self._finite is None else self._finite & finite
        self._unchecked.append(int(self.global_step))
        if len(self._unchecked) >= self.finite_check_every:
            self._raise_if_not_finite(terms, batch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._raise_if_not_finite()

    def on_train_epoch_end(self) -> None:
        self._raise_if_not_finite()

    def _raise_if_not_finite(
        self, terms: dict[str, Tensor] | None = None, batch: dict[str, Tensor] | None = None
    ) -> None:
        """The check itself (one host sync): quiet if every term since the last one was finite.
        `terms`/`batch`: the step just run, named in the message when it is the bad one."""
        finite, steps = self._finite, self._unchecked
        self._finite, self._unchecked = None, []
        if finite is None or bool(finite):
            return
        where = (
            f"training step {steps[0]}"
            if len(steps) == 1
            else (
                f"a training step in {steps[0]}-{steps[-1]} (the loss terms are checked every "
                f"{self.finite_check_every} steps on this device)"
            )
        )
        detail = ": a non-finite loss term"
        if terms is not None and batch is not None and len(steps) == 1:
            bad = [name for name, value in terms.items() if not bool(torch.isfinite(value).all())]
            keys = batch["episode_index"].tolist() if "episode_index" in batch else []
            datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
            dataset = getattr(datamodule, "train_set", None)
            episodes = "; ".join(dataset.describe_episode(k) for k in keys) if dataset else keys
            values = ", ".join(f"{name}={terms[name].item()}" for name in bad)
            detail = f": non-finite loss term {values}; {episodes}"
        raise NonFiniteLossError(
            f"{where}{detail}. The last checkpoint was kept: check the episodes' files, or "
            f"lower optimizer.lr and resume with ckpt_path={last_checkpoint('<run>')}"
        )

    def _evaluate(self, batch: dict[str, Tensor], miou: ClassMIoU, fbiou: FBIoU) -> None:
        self.check_episodes(batch)
        for pred, target, class_index in scored(batch, self.predict(batch), self.scoring):
            target = boundary(target, self.ignore_boundary)
            miou.update(pred, target, class_index)  # class_index (B,) or (B, N)
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
        """The configured optimiser over the network's learnable parameters (outside the frozen
        backbone), and the configured schedule stepped every iteration."""
        if self.optimizer_factory is None:
            raise RuntimeError("no optimizer configured: pass optimizer=<partial> to train")
        learnable = getattr(self.net, "learnable_parameters", self.net.parameters)
        optimizer = self.optimizer_factory([p for p in learnable() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        max_iter = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = self.scheduler_factory(optimizer, max_iter=max_iter)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
