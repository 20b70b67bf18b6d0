"""Inference policies around a network, shared by evaluation and `sdaanet-predict`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

Network = Callable[[Tensor, Tensor, Tensor], Tensor]


class MultiScale:
    """Table V's multi-scale inference: the network also runs on the inputs resized to each
    listed side; the softmax outputs, resized to the input size, are summed. Its output is a
    score map (B,C,H,W) whose argmax is the prediction, like the logits it replaces."""

    def __init__(self, net: Network, sides: Sequence[int]) -> None:
        if not sides:
            raise ValueError("multi-scale inference needs at least one side, e.g. [321, 473]")
        self.net = net
        self.sides = tuple(int(s) for s in sides)

    def __call__(self, query: Tensor, support_images: Tensor, support_masks: Tensor) -> Tensor:
        size = query.shape[-2:]
        total = 0
        for side in self.sides:
            if (side, side) == tuple(size):
                scores = self.net(query, support_images, support_masks)
            else:
                resize = (side, side)
                scores = self.net(
                    F.interpolate(query, resize, mode="bilinear", align_corners=True),
                    F.interpolate(
                        support_images.flatten(0, 1), resize, mode="bilinear", align_corners=True
                    ).unflatten(0, support_images.shape[:2]),
                    F.interpolate(support_masks.float(), resize, mode="nearest").long(),
                )
                scores = F.interpolate(scores, size, mode="bilinear", align_corners=True)
            total = total + scores.softmax(1)
        return total


def inference(net: Network, multiscale: Sequence[int] | None = None) -> Network:
    """The network itself, or wrapped in `MultiScale` when `multiscale` lists sides."""
    return MultiScale(net, multiscale) if multiscale else net
