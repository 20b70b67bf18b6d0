"""Figures: PNG overlay grids (demo) and the notebook's matplotlib figures for the paper's
Fig. 7 (qualitative), Fig. 8 (t-SNE of prototypes), Fig. 9 (class-mIoU by object size),
Fig. 10 (SAAM attention), Fig. 11 (support similarity maps) and Fig. 12 (failure cases); the
numbers come from `sdaanet.analysis`."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from sdaanet.analysis import EpisodeShow
from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from sdaanet.io import atomic_write
from sdaanet.metrics import episode_counts

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MEAN_255 = np.array(IMAGENET_MEAN) * 255
STD_255 = np.array(IMAGENET_STD) * 255
GREEN = (0, 200, 0)
RED = (230, 30, 30)
GRID_TITLES = ("support + mask", "query", "ground truth", "prediction")
Colour = tuple[int, int, int]


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


def class_colours(ways: int) -> list[Colour]:
    """The overlay colour of labels 1..`ways`: hues evenly spaced from red."""
    hues = (colorsys.hsv_to_rgb(n / ways, 0.85, 0.95) for n in range(ways))
    return [(round(r * 255), round(g * 255), round(b * 255)) for r, g, b in hues]


def label_overlay(rgb: np.ndarray, labels: np.ndarray, ways: int) -> np.ndarray:
    """`rgb` with label n (1..`ways`) blended in `class_colours(ways)[n - 1]`."""
    blended = rgb
    for n, colour in enumerate(class_colours(ways), 1):
        blended = overlay(blended, (labels == n).astype(np.uint8), colour)
    return blended


def legend(names: Sequence[str]) -> str:
    """`0 = background, 1 = cat (#f22424), ...`: what each label and overlay colour means."""
    pairs = enumerate(zip(names, class_colours(len(names)), strict=True), 1)
    keys = [f"{n} = {name} (#{r:02x}{g:02x}{b:02x})" for n, (name, (r, g, b)) in pairs]
    return ", ".join(["0 = background", *keys])


def legend_image(names: Sequence[str], row: int = 20, pad: int = 4) -> np.ndarray:
    """(H,W,3) uint8: one row per class, its overlay colour's swatch and `n: name`."""
    texts = [f"{n}: {name}" for n, name in enumerate(names, 1)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 3 * pad + row + int(max(probe.textlength(t) for t in texts)) + 1
    canvas = Image.new("RGB", (width, pad + len(texts) * row), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (text, colour) in enumerate(zip(texts, class_colours(len(names)), strict=True)):
        y = pad + i * row
        draw.rectangle((pad, y, pad + row - 1, y + row - pad - 1), fill=colour, outline=(0, 0, 0))
        draw.text((2 * pad + row, y + (row - pad) // 2), text, fill=(0, 0, 0), anchor="lm")
    return np.asarray(canvas)


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


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    """`text` broken at spaces into lines at most `width` px wide (a longer word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def save_grid(rows: Sequence[Sequence[np.ndarray]], path: str | Path, pad: int = 4) -> Path:
    """Write a PNG with one row of equally sized panels per episode under a header of column
    titles, wrapped to the panel width; a column widens to its longest word, so no title runs
    into the next."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles = [_wrap(draw, t, w) for t in GRID_TITLES[:ncol]]
    boxes = [draw.multiline_textbbox((0, 0), t) for t in titles]
    col = max(w, *(b[2] for b in boxes))
    header = max(b[3] for b in boxes) + 2 * pad
    canvas = Image.new(
        "RGB", (ncol * (col + pad) + pad, header + len(rows) * (h + pad)), (255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.multiline_text((pad + c * (col + pad), pad), title, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            canvas.paste(Image.fromarray(panel), (pad + c * (col + pad), header + r * (h + pad)))
    return atomic_write(path, lambda f: canvas.save(f, format="PNG"))


# ------------------------------------------------------------ notebook figures (matplotlib)
def _figure(rows: int, cols: int, size: float = 2.4) -> tuple[Figure, np.ndarray]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    return fig, axes


def _show(ax: Axes, image: np.ndarray, title: str, cmap: str | None = None) -> None:
    ax.imshow(image, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def heatmap(rgb: np.ndarray, values: Tensor, alpha: float = 0.5) -> np.ndarray:
    """`values` (H,W) in [0,1] as a jet heatmap blended over `rgb` (Fig. 10)."""
    import matplotlib

    colours = matplotlib.colormaps["jet"](values.detach().cpu().clamp(0, 1).numpy())[..., :3]
    return ((1 - alpha) * rgb + alpha * 255 * colours).astype(np.uint8)


def scaled_attention(logit: Tensor) -> Tensor:
    """SAAM's query attention, a raw logit of any range (D10), min-max scaled to [0,1] per map
    for `heatmap`: warm = more attention, as the paper draws Fig. 10; its sign is kept."""
    low, high = logit.min(), logit.max()
    return (logit - low) / (high - low) if high > low else torch.zeros_like(logit)


def fig_qualitative(episodes: dict[str, Sequence[EpisodeShow]], n: int = 4) -> Figure:
    """Fig. 7: support + mask, query, ground truth, then one prediction column per model (the
    models' records must come from the same episodes, e.g. Baseline and SD-AANet)."""
    models = list(episodes)
    first = episodes[models[0]][:n]
    fig, axes = _figure(len(first), 3 + len(models))
    for r, ep in enumerate(first):
        q = denormalize(ep.query)
        _show(axes[r, 0], overlay(denormalize(ep.support_image), ep.support_mask.numpy(), GREEN),
              f"support (class {ep.class_id})")  # fmt: skip
        _show(axes[r, 1], q, f"query (episode {ep.episode})")
        _show(axes[r, 2], overlay(q, ep.target.numpy(), GREEN), "ground truth")
        for c, model in enumerate(models):
            other = episodes[model][r]
            if other.episode != ep.episode:
                raise ValueError(f"{model} shows episode {other.episode}, not {ep.episode}")
            _show(axes[r, 3 + c], overlay(q, other.pred.numpy(), RED), model)
    fig.tight_layout()
    return fig


def fig_attention(episodes: Sequence[EpisodeShow], n: int = 4) -> Figure:
    """Fig. 10: query with ground truth, SAAM's query attention and the prior as heatmaps."""
    shown = list(episodes[:n])
    if any(ep.attention is None for ep in shown):
        raise ValueError("these episodes have no SAAM attention map: the model has SAAM off")
    fig, axes = _figure(len(shown), 3)
    for r, ep in enumerate(shown):
        q = denormalize(ep.query)
        _show(axes[r, 0], overlay(q, ep.target.numpy(), GREEN), f"query, class {ep.class_id}")
        _show(axes[r, 1], heatmap(q, scaled_attention(ep.attention)), "SAAM attention")
        _show(axes[r, 2], heatmap(q, ep.prior), "prior mask")
    fig.tight_layout()
    return fig


def fig_tsne(
    embeddings: dict[str, np.ndarray], class_ids: np.ndarray, names: dict[int, str]
) -> Figure:
    """Fig. 8: one scatter panel per prototype kind (e.g. raw, SDPM), coloured by class."""
    fig, axes = _figure(1, len(embeddings), size=4.0)
    for ax, (title, xy) in zip(axes[0], embeddings.items(), strict=True):
        for cid in np.unique(class_ids):
            m = class_ids == cid
            ax.scatter(xy[m, 0], xy[m, 1], s=12, label=names.get(int(cid), str(cid)))
        ax.set_title(f"t-SNE of {title} prototypes", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def fig_size_bins(bins: Sequence[dict[str, Any]]) -> Figure:
    """Fig. 9: class-mIoU per object-size bin (pixels), with the episode count on each bar."""
    fig, axes = _figure(1, 1, size=5.0)
    ax = axes[0, 0]
    x = np.arange(len(bins))
    ax.bar(x, [0 if np.isnan(b["miou"]) else b["miou"] for b in bins])
    for i, b in enumerate(bins):
        ax.text(i, 0.01, str(b["episodes"]), ha="center", fontsize=7)
    ax.set_xticks(x, [b["bin"] for b in bins], rotation=45, fontsize=7)
    ax.set_xlabel("object size (pixels)")
    ax.set_ylabel("class-mIoU")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    return fig


def _mask_image(mask: Tensor) -> np.ndarray:
    """A label as a grey image: foreground 1, void (255) 0.5, background 0."""
    m = mask.cpu().numpy()
    return (m == 1) + 0.5 * (m == 255)


def fig_similarity(
    episodes: Sequence[EpisodeShow], maps: Mapping[str, Tensor], n: int = 4
) -> Figure:
    """Fig. 11: support image, its mask, then one cosine-similarity map (`support_similarity`,
    one (N,H,W) tensor per model, e.g. baseline and SD-AANet) as a heatmap over the support."""
    shown = list(episodes[:n])
    fig, axes = _figure(len(shown), 2 + len(maps))
    for r, ep in enumerate(shown):
        s = denormalize(ep.support_image)
        _show(axes[r, 0], s, f"support (class {ep.class_id})")
        _show(axes[r, 1], _mask_image(ep.support_mask), "support mask", cmap="gray")
        for c, (model, sim) in enumerate(maps.items()):
            _show(axes[r, 2 + c], heatmap(s, sim[r]), f"{model} similarity")
    fig.tight_layout()
    return fig


def fig_failures(episodes: Sequence[EpisodeShow]) -> Figure:
    """Fig. 12: support + mask, query, ground truth, SAAM attention and the prediction (with its
    foreground IoU) of each episode, e.g. the worst ones (`worst_episodes`)."""
    shown = list(episodes)
    if any(ep.attention is None for ep in shown):
        raise ValueError("these episodes have no SAAM attention map: the model has SAAM off")
    fig, axes = _figure(len(shown), 5)
    for r, ep in enumerate(shown):
        q = denormalize(ep.query)
        inter, union = episode_counts(ep.pred[None], ep.target[None])
        iou = inter[0, 1].item() / max(union[0, 1].item(), 1)
        _show(axes[r, 0], overlay(denormalize(ep.support_image), ep.support_mask.numpy(), GREEN),
              f"support (class {ep.class_id})")  # fmt: skip
        _show(axes[r, 1], q, f"query (episode {ep.episode})")
        _show(axes[r, 2], overlay(q, ep.target.numpy(), GREEN), "ground truth")
        _show(axes[r, 3], heatmap(q, scaled_attention(ep.attention)), "SAAM attention")
        _show(axes[r, 4], overlay(q, ep.pred.numpy(), RED), f"prediction, IoU {iou:.2f}")
    fig.tight_layout()
    return fig
