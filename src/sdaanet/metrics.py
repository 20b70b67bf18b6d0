"""Few-shot segmentation metrics (code map: evaluation): class-mIoU (the paper's metric) and FB-IoU.

Both sum intersections and unions over all episodes before dividing, ignore label 255, and
sync across DDP ranks by summing their states.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

IGNORE_INDEX = 255


def episode_counts(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-episode (intersection, union) for background and foreground, each (B, 2).

    Predictions at ignored target pixels are discarded, as in the authors' intersectionAndUnion.
    """
    valid = target != IGNORE_INDEX
    inter, union = [], []
    for c in (0, 1):
        p = (preds == c) & valid
        t = (target == c) & valid
        i = (p & t).flatten(1).sum(1)
        inter.append(i)
        union.append(p.flatten(1).sum(1) + t.flatten(1).sum(1) - i)
    return torch.stack(inter, 1), torch.stack(union, 1)


def channel_target(target: Tensor, label: int) -> Tensor:
    """``label`` -> 1, 255 kept, everything else -> 0."""
    return torch.where(target == IGNORE_INDEX, target, (target == label).long())


def foreground(labels: Tensor) -> Tensor:
    """Any class -> 1, 255 kept: an N-way label map as background/foreground (FB-IoU)."""
    return torch.where(labels == IGNORE_INDEX, labels, (labels > 0).long())


class ClassMIoU(Metric):
    """Foreground IoU per novel class over all episodes, averaged over the fold's `n_classes`.

    IoU_c = sum I_c / (sum U_c + 1e-10). The mean runs over the classes drawn in at least one
    episode: the authors count a never-drawn class as 0, which their 1000/4000 episodes never hit
    (every class is drawn), but a short run or a class left out for having too few images would.

    N-way episodes (multi-class mode): ``class_index`` is (B, N) and labels hold 0..N; channel n
    counts towards class ``class_index[:, n-1]`` (Table VIII's per-class IoU).
    """

    full_state_update = False

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.add_state("inter", torch.zeros(n_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("union", torch.zeros(n_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("drawn", torch.zeros(n_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, class_index: Tensor) -> None:
        if class_index.min() < 0 or class_index.max() >= self.n_classes:
            raise ValueError(f"class_index must lie in [0, {self.n_classes}), got {class_index}")
        if class_index.dim() == 2:
            for n in range(class_index.shape[1]):
                self.update(
                    (preds == n + 1).long(), channel_target(target, n + 1), class_index[:, n]
                )
            return
        inter, union = episode_counts(preds, target)
        self.inter.index_add_(0, class_index, inter[:, 1].double())
        self.union.index_add_(0, class_index, union[:, 1].double())
        self.drawn.index_add_(0, class_index, torch.ones_like(class_index, dtype=torch.float64))

    def _iou(self) -> Tensor:
        iou = self.inter / (self.union + 1e-10)
        return torch.where(self.drawn > 0, iou, torch.nan)

    def per_class(self) -> Tensor:
        """IoU of every class (NaN for a class never drawn), synced across DDP ranks."""
        if self._is_synced:
            return self._iou()
        with self.sync_context():
            return self._iou()

    def compute(self) -> Tensor:
        return self._iou().nanmean().float()


class FBIoU(Metric):
    """Mean of background and foreground IoU from counts summed over all episodes (in N-way
    episodes every class is foreground)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("inter", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("union", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        inter, union = episode_counts(foreground(preds), foreground(target))
        self.inter += inter.sum(0).double()
        self.union += union.sum(0).double()

    def compute(self) -> Tensor:
        return (self.inter / (self.union + 1e-10)).mean().float()
