"""Figures: overlay grids of support / query / ground truth / prediction (paper Fig. 7 style)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

MEAN_255 = np.array(IMAGENET_MEAN) * 255
STD_255 = np.array(IMAGENET_STD) * 255
GREEN = (0, 200, 0)
RED = (230, 30, 30)


def denormalize(image: Tensor) -> np.ndarray:
    """(3,H,W) ImageNet-normalised tensor -> (H,W,3) uint8 RGB."""
    rgb = image.detach().cpu().permute(1, 2, 0).numpy() * STD_255 + MEAN_255
    return np.clip(rgb, 0, 255).astype(np.uint8)


def overlay(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Blend `color` over the pixels where mask == 1 (255 = void is left as is)."""
    out = rgb.astype(np.float32)
    fg = mask == 1
    out[fg] = 0.5 * out[fg] + 0.5 * np.array(color, dtype=np.float32)
    return out.astype(np.uint8)


def episode_row(
    support_image: Tensor, support_mask: Tensor, query: Tensor, target: Tensor, pred: Tensor
) -> list[np.ndarray]:
    """The four panels of one episode: support+mask, query, ground truth, prediction."""
    q = denormalize(query)
    return [
        overlay(denormalize(support_image), support_mask.cpu().numpy(), GREEN),
        q,
        overlay(q, target.cpu().numpy(), GREEN),
        overlay(q, pred.cpu().numpy(), RED),
    ]


def save_grid(rows: Sequence[Sequence[np.ndarray]], path: str | Path, pad: int = 4) -> Path:
    """Write a PNG with one row of equally sized panels per episode and a header line."""
    titles = ["support + mask", "query", "ground truth", "prediction"]
    h, w = rows[0][0].shape[:2]
    header = 16
    ncol = max(len(r) for r in rows)
    canvas = Image.new(
        "RGB", (ncol * (w + pad) + pad, header + len(rows) * (h + pad) + pad), (255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles[:ncol]):
        draw.text((pad + c * (w + pad), 2), title, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            canvas.paste(
                Image.fromarray(panel), (pad + c * (w + pad), header + pad + r * (h + pad))
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    canvas.save(tmp, format="PNG")
    tmp.replace(path)
    return path
