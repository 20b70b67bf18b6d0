"""A toy few-shot network written the way docs/extending.md says a new method is added."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdaanet.models import TrainOutput


class ToyNet(nn.Module):
    """Per-pixel logits from the query colour and the support foreground's mean colour."""

    def __init__(self, hidden: int, smooth_weight: float) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(6, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 2, 1))
        self.loss_weights = {"main": 1.0, "smooth": float(smooth_weight)}

    def forward(
        self, query: Tensor, support_images: Tensor, support_masks: Tensor, query_mask=None
    ) -> Tensor | TrainOutput:
        fg = (support_masks == 1).unsqueeze(2).float()  # (B,K,1,H,W)
        proto = (support_images * fg).sum((1, 3, 4)) / fg.sum((1, 3, 4)).clamp(min=1)
        logits = self.head(torch.cat([query, proto[..., None, None].expand_as(query)], 1))
        if not self.training:
            return logits
        main = F.cross_entropy(logits, query_mask, ignore_index=255)
        smooth = logits.diff(dim=-1).abs().mean()
        return TrainOutput(logits, {"main": main, "smooth": smooth})
