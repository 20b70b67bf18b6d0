"""The checks of an episode's tensors (shapes, sizes, label values), one-line ``ValueError``s
naming the argument; shared by the binary and the multi-class network."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

MIN_SIZE = 65  # the smallest input side (>= 9 feature pixels at output stride 8)


def shape(x: Tensor) -> tuple[int, ...]:
    """`x.shape` as a plain tuple, for messages."""
    return tuple(x.shape)


def host_checks(x: Tensor) -> bool:
    """Whether value checks of `x` run: on the CPU they are free; on CUDA reading a result back
    would make the host wait for the GPU every step, so they are left to the data pipeline
    (`sdaanet.io.read_label` checks every label value when it reads the file)."""
    return x.device.type == "cpu"


def check_labels(name: str, labels: Tensor) -> None:
    """Binary labels hold only 0, 1 and 255 (ignore)."""
    if not host_checks(labels):
        return
    valid = (labels == 0) | (labels == 1) | (labels == 255)
    if not bool(valid.all()):
        bad = torch.unique(labels[~valid])[:5].tolist()
        raise ValueError(f"{name} must contain only 0, 1 and 255 (ignore); found {bad}")


def check_episode(query: Tensor, support_images: Tensor, support_masks: Tensor) -> None:
    """An episode's query (B,3,H,W), supports (B,K,3,H,W) and masks (B,K,H,W); warns about a
    support mask without foreground."""
    for name, x in [
        ("query", query),
        ("support_images", support_images),
        ("support_masks", support_masks),
    ]:
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if query.dim() != 4 or query.shape[1] != 3:
        raise ValueError(f"query must have shape (B,3,H,W), got {shape(query)}")
    b = query.shape[0]
    if support_images.dim() != 5 or support_images.shape[2] != 3:
        raise ValueError(f"support_images must have shape (B,K,3,H,W), got {shape(support_images)}")
    if support_masks.dim() != 4:
        raise ValueError(f"support_masks must have shape (B,K,H,W), got {shape(support_masks)}")
    bs, k = support_images.shape[:2]
    if bs != b or k < 1:
        raise ValueError(
            f"support_images must have shape (B={b},K>=1,3,H,W), got {shape(support_images)}"
        )
    if support_masks.shape[:2] != support_images.shape[:2]:
        raise ValueError(
            f"support_masks must have shape (B,K,H,W) = ({b},{k},H,W) matching "
            f"support_images (K={k} images), got {shape(support_masks)}"
        )
    if support_masks.shape[-2:] != support_images.shape[-2:]:
        raise ValueError(
            f"support_masks must have the spatial size of support_images "
            f"{tuple(support_images.shape[-2:])}, got {shape(support_masks)}"
        )
    for name, x in [("query", query), ("support_images", support_images)]:
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"{name} is {tuple(x.shape[-2:])} pixels; both sides must be >= {MIN_SIZE}"
            )
    check_labels("support_masks", support_masks)
    empty = ~(support_masks == 1).flatten(2).any(dim=2)
    if host_checks(empty) and bool(empty.any()):
        warnings.warn(
            f"support_masks: {int(empty.sum())} of {b * k} support masks have no foreground "
            "pixel; their prototypes are zero and the prediction is unreliable",
            UserWarning,
            stacklevel=3,
        )


def check_query_mask(query: Tensor, query_mask: Tensor | None) -> Tensor:
    """The training query mask (B,H,W) of binary labels."""
    if query_mask is None:
        raise ValueError(
            "query_mask (B,H,W) is required in training mode (losses); "
            "call model.eval() for inference without it"
        )
    b, _, h, w = query.shape
    if not isinstance(query_mask, Tensor) or shape(query_mask) != (b, h, w):
        got = shape(query_mask) if isinstance(query_mask, Tensor) else type(query_mask)
        raise ValueError(f"query_mask must have shape (B,H,W) = ({b},{h},{w}), got {got}")
    check_labels("query_mask", query_mask)
    return query_mask
