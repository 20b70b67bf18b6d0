"""The analyses behind the paper's figures, on a trained binary checkpoint.

`collect` runs a network over test episodes and keeps, per episode, the prediction, the object
size, the prototypes before and after SDPM (Fig. 8) and, for the first few episodes, the images
with the prior and SAAM attention maps (Fig. 7, 10). `tsne` embeds the prototypes (Fig. 8);
`miou_by_object_size` gives class-mIoU per object-size bin (Fig. 9); `per_class_table` and
`protocol` give the per-class IoU and what the numbers were measured on. `sdaanet.viz` draws them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sdaanet.checkpoint import description, summary
from sdaanet.metrics import ClassMIoU, FBIoU, episode_counts


@dataclass
class EpisodeShow:
    """One episode kept for display: images as stored in the batch (normalised tensors)."""

    episode: int
    class_id: int
    support_image: Tensor  # (3,H,W), the first shot
    support_mask: Tensor  # (H,W)
    query: Tensor  # (3,H,W)
    target: Tensor  # (H,W)
    pred: Tensor  # (H,W)
    prior: Tensor  # (H,W) in [0,1]
    attention: Tensor | None  # (H,W) SAAM query attention


@dataclass
class Records:
    """What `collect` keeps: per-episode arrays (length E) and the first episodes in full."""

    episode: np.ndarray  # (E,) episode numbers
    class_id: np.ndarray  # (E,) the episode's class id (1-based, dataset ids)
    class_index: np.ndarray  # (E,) its index among the fold's test classes
    object_size: np.ndarray  # (E,) foreground pixels of the query label (ignore excluded)
    inter: np.ndarray  # (E,) foreground intersection
    union: np.ndarray  # (E,) foreground union
    prototype: np.ndarray  # (E,C) mean masked-GAP support prototype
    sdpm_prototype: np.ndarray | None  # (E,C) after SDPM (None when SDPM is off)
    n_classes: int
    shown: list[EpisodeShow] = field(default_factory=list)
    batches: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list, repr=False)
    """(pred, target, class_index) per batch, for the package's metrics."""


@torch.no_grad()
def collect(
    net: nn.Module,
    batches: Iterable[dict[str, Tensor]],
    n_classes: int,
    max_episodes: int | None = None,
    show: int = 8,
) -> Records:
    """Run `net.trace` (eval mode, on the net's device) over episode batches.

    Keeps every episode's statistics (up to `max_episodes`) and the first `show` episodes'
    images and maps; `n_classes` is the fold's number of test classes."""
    net.eval()
    device = next(net.parameters()).device
    rows: dict[str, list[Any]] = {k: [] for k in ("episode", "cid", "cidx", "size", "i", "u")}
    protos: list[Tensor] = []
    sdpm: list[Tensor] = []
    shown: list[EpisodeShow] = []
    kept: list[tuple[Tensor, Tensor, Tensor]] = []
    seen = 0
    for batch in batches:
        take = batch["query_image"].shape[0]
        if max_episodes is not None:
            take = min(take, max_episodes - seen)
        if take <= 0:
            break
        b = {k: v[:take] for k, v in batch.items() if isinstance(v, Tensor)}
        trace = net.trace(
            b["query_image"].to(device),
            b["support_images"].to(device),
            b["support_masks"].to(device),
        )
        pred = trace.logits.argmax(1).cpu()
        target = b["query_mask"]
        inter, union = episode_counts(pred, target)
        rows["episode"] += b["episode_index"].tolist()
        rows["cid"] += b["class_id"].tolist()
        rows["cidx"] += b["class_index"].tolist()
        rows["size"] += (target == 1).flatten(1).sum(1).tolist()
        rows["i"] += inter[:, 1].tolist()
        rows["u"] += union[:, 1].tolist()
        protos.append(trace.prototype.float().cpu())
        if trace.sdpm_prototype is not None:
            sdpm.append(trace.sdpm_prototype.float().cpu())
        kept.append((pred, target, b["class_index"]))
        for j in range(min(take, show - len(shown))):
            attn = trace.attention
            shown.append(
                EpisodeShow(
                    int(b["episode_index"][j]),
                    int(b["class_id"][j]),
                    b["support_images"][j, 0],
                    b["support_masks"][j, 0],
                    b["query_image"][j],
                    target[j],
                    pred[j],
                    trace.prior[j, 0].float().cpu(),
                    None if attn is None else attn[j, 0].float().cpu(),
                )
            )
        seen += take
    if not seen:
        raise ValueError("collect: the loader gave no episodes")
    return Records(
        *(np.asarray(rows[k]) for k in ("episode", "cid", "cidx", "size", "i", "u")),
        prototype=torch.cat(protos).numpy(),
        sdpm_prototype=torch.cat(sdpm).numpy() if sdpm else None,
        n_classes=n_classes,
        shown=shown,
        batches=kept,
    )


def class_miou(records: Records, select: np.ndarray | None = None) -> float:
    """Class-mIoU (mean over the classes drawn of sum I / sum U) of the selected episodes."""
    keep = np.ones(len(records.episode), bool) if select is None else select
    ious = []
    for c in np.unique(records.class_index[keep]):
        m = keep & (records.class_index == c)
        ious.append(records.inter[m].sum() / max(records.union[m].sum(), 1))
    return float(np.mean(ious)) if ious else float("nan")


def miou_by_object_size(
    records: Records, bin_width: int = 500, max_size: int = 5000
) -> list[dict[str, Any]]:
    """Fig. 9: class-mIoU of the episodes whose object (query foreground pixels) falls in each
    bin [lo, lo + bin_width) up to `max_size`; one last bin holds the larger objects."""
    edges = [*range(0, max_size + 1, bin_width), None]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        upper = np.inf if hi is None else hi
        m = (records.object_size >= lo) & (records.object_size < upper)
        label = f"{lo}-{hi}" if hi is not None else f">={lo}"
        miou = class_miou(records, m) if m.any() else float("nan")
        out.append({"bin": label, "low": lo, "high": hi, "episodes": int(m.sum()), "miou": miou})
    return out


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE embedding (scikit-learn) of (E,C) features; perplexity capped for few points."""
    from sklearn.manifold import TSNE

    n = features.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 episodes, got {n}: collect more episodes")
    perplexity = min(perplexity, (n - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def per_class_table(records: Records, names: dict[int, str]) -> list[dict[str, Any]]:
    """Per-class IoU (Table VIII style) with episode counts, via the package's ClassMIoU and
    FB-IoU metrics; the last row is the class-mIoU and FB-IoU."""
    miou, fb = ClassMIoU(records.n_classes), FBIoU()
    for pred, target, class_index in records.batches:
        miou.update(pred, target, class_index)
        fb.update(pred, target)
    per_class = miou.per_class().tolist()
    ids = {int(i): int(c) for i, c in zip(records.class_index, records.class_id, strict=True)}
    rows = []
    for idx, iou in enumerate(per_class):
        cid = ids.get(idx)
        rows.append(
            {
                "class": names.get(cid, f"class {idx}") if cid is not None else f"class {idx}",
                "episodes": int((records.class_index == idx).sum()),
                "iou": iou,
            }
        )
    rows.append({"class": "class-mIoU", "episodes": len(records.episode),
                 "iou": miou.compute().item(), "fbiou": fb.compute().item()})  # fmt: skip
    return rows


def protocol(checkpoint: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """What a notebook's numbers were measured on: checkpoint architecture and data settings."""
    info = description(checkpoint, "<notebook checkpoint>")
    data = cfg.data
    return {
        "network": summary(info["network"]),
        "trained shot": info["shot"],
        "selection": info["selection"],
        "global step": checkpoint.get("global_step"),
        "dataset": str(data._target_).rsplit(".", 1)[-1],
        "fold": data.fold,
        "shot": cfg.shot,
        "episodes": data.val_episodes,
        "seed": data.get("val_seed"),
        "input size": data.val_size,
        "val transform": data.get("val_transform", "val"),
    }
