"""Inference policies around a network, shared by evaluation and `sdaanet-predict`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

Network = Callable[[Tensor, Tensor, Tensor], Tensor]


class MultiScale:
    """Table V's multi-scale inference: the network also runs on the inputs resized to each
    listed side; the softmax outputs, resized to the input size, are summed. Its output is a
    score map (B,C,H,W) whose argmax is the prediction, like the logits it replaces. Supports
    are (B, K, 3, H, W), or (B, N, K, 3, H, W) for N-way episodes."""

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
                masks = support_masks.flatten(0, -3).unsqueeze(1).float()  # (B, [N,] K, H, W)
                scores = self.net(
                    F.interpolate(query, resize, mode="bilinear", align_corners=True),
                    F.interpolate(
                        support_images.flatten(0, -4), resize, mode="bilinear", align_corners=True
                    ).unflatten(0, support_images.shape[:-3]),
                    F.interpolate(masks, resize, mode="nearest")
                    .squeeze(1)
                    .long()
                    .unflatten(0, support_masks.shape[:-2]),
                )
                scores = F.interpolate(scores, size, mode="bilinear", align_corners=True)
            total = total + scores.softmax(1)
        return total


class ShotVoting:
    """HSNet's test-time K-shot from a 1-shot network: each support alone gives a prediction,
    the votes V (0..K per pixel) are summed, and a pixel is foreground where
    V / max(max_pixels V, 1) >= 0.5: the threshold is relative to the largest vote in the image,
    not to K. Its output is the one-hot (B, 2, H, W) of that decision."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def __call__(self, query: Tensor, support_images: Tensor, support_masks: Tensor) -> Tensor:
        votes = sum(
            self.net(query, support_images[:, k : k + 1], support_masks[:, k : k + 1]).argmax(1)
            for k in range(support_images.shape[1])
        )
        return F.one_hot(vote(votes), 2).permute(0, 3, 1, 2).float()


def vote(votes: Tensor) -> Tensor:
    """The foreground (B, H, W) of summed 0/1 votes: V / max(max V, 1) >= 0.5 per episode."""
    peak = votes.flatten(1).amax(1).clamp(min=1).view(-1, 1, 1)
    return (votes.float() / peak >= 0.5).long()


def inference(
    net: Network, multiscale: Sequence[int] | None = None, kshot: str | None = None
) -> Network:
    """The network itself, wrapped in `MultiScale` when `multiscale` lists sides and in
    `ShotVoting` for `kshot="voting"` (`"fusion"` and None: the network's own K-shot path)."""
    policy = MultiScale(net, multiscale) if multiscale else net
    return ShotVoting(policy) if kshot == "voting" else policy
