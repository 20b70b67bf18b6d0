"""Batching episodes: ``default_collate`` plus padding of the original-size query labels."""

from __future__ import annotations

import torch
from torch.utils.data import default_collate


def collate_episodes(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``default_collate``, but original-size ``raw_query_mask``s are padded with 255 (ignore)
    at the bottom/right to the largest one; ``raw_size`` keeps each one's (h, w)."""
    raw = [item.pop("raw_query_mask") for item in items if "raw_query_mask" in item]
    batch = default_collate(items)
    if raw:
        h = max(r.shape[0] for r in raw)
        w = max(r.shape[1] for r in raw)
        padded = torch.full((len(raw), h, w), 255, dtype=torch.int64)
        for b, r in enumerate(raw):
            padded[b, : r.shape[0], : r.shape[1]] = r
        batch["raw_query_mask"] = padded
    return batch
