"""The analyses behind the paper's figures, on a trained binary checkpoint.

`collect` runs a network over test episodes and keeps, per episode, the prediction, the object
size, the prototypes before and after SDPM (Fig. 8) and, for the first few episodes, the images
with the prior and SAAM attention maps (Fig. 7, 10). `tsne` embeds the prototypes (Fig. 8);
`size_bin_edges` and `miou_by_object_size` give class-mIoU per object-size bin (Fig. 9);
`support_similarity` the prototype's cosine similarity with its support features (Fig. 11);
`worst_episodes` and `show_episodes` the failure cases (Fig. 12); `per_class_table`,
`format_per_class` and `protocol` the per-class IoU and what the numbers were measured on.
`sdaanet.viz` draws them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from sdaanet.checkpoint import description, summary
from sdaanet.data.collate import collate_episodes
from sdaanet.metrics import ClassMIoU, FBIoU, episode_counts
from sdaanet.models import SDAANetTrace
from sdaanet.models.layers import masked_gap, resize
from sdaanet.models.sdpm import reweight

PAPER_INPUT = 321  # the paper's evaluation input side (Sec. IV-B)
PAPER_BIN = 500  # Fig. 9: ten 500-pixel bins of objects below 5000 pixels
PAPER_MAX_SIZE = 5000


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


_ROWS = ("episode", "cid", "cidx", "size", "i", "u")  # Records' first six fields, in order


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
    rows: dict[str, list[Any]] = {k: [] for k in _ROWS}
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
        _add_rows(rows, b, pred)
        protos.append(trace.prototype.float().cpu())
        if trace.sdpm_prototype is not None:
            sdpm.append(trace.sdpm_prototype.float().cpu())
        kept.append((pred, b["query_mask"], b["class_index"]))
        shown += _shows(b, trace, pred, min(take, show - len(shown)))
        seen += take
    if not seen:
        raise ValueError("collect: the loader gave no episodes")
    return Records(
        *(np.asarray(rows[k]) for k in _ROWS),
        prototype=torch.cat(protos).numpy(),
        sdpm_prototype=torch.cat(sdpm).numpy() if sdpm else None,
        n_classes=n_classes,
        shown=shown,
        batches=kept,
    )


def _add_rows(rows: dict[str, list[Any]], batch: Mapping[str, Tensor], pred: Tensor) -> None:
    """Append a batch's per-episode statistics to `collect`'s rows (`_ROWS`)."""
    target = batch["query_mask"]
    inter, union = episode_counts(pred, target)
    rows["episode"] += batch["episode_index"].tolist()
    rows["cid"] += batch["class_id"].tolist()
    rows["cidx"] += batch["class_index"].tolist()
    rows["size"] += (target == 1).flatten(1).sum(1).tolist()
    rows["i"] += inter[:, 1].tolist()
    rows["u"] += union[:, 1].tolist()


def _shows(
    batch: Mapping[str, Tensor], trace: SDAANetTrace, pred: Tensor, n: int
) -> list[EpisodeShow]:
    """The batch's first `n` episodes for display (none when `n` <= 0)."""
    attn = trace.attention
    return [
        EpisodeShow(
            int(batch["episode_index"][j]),
            int(batch["class_id"][j]),
            batch["support_images"][j, 0],
            batch["support_masks"][j, 0],
            batch["query_image"][j],
            batch["query_mask"][j],
            pred[j],
            trace.prior[j, 0].float().cpu(),
            None if attn is None else attn[j, 0].float().cpu(),
        )
        for j in range(n)
    ]


def class_miou(records: Records, select: np.ndarray | None = None) -> float:
    """Class-mIoU (mean over the classes drawn of sum I / sum U) of the selected episodes."""
    keep = np.ones(len(records.episode), bool) if select is None else select
    ious = []
    for c in np.unique(records.class_index[keep]):
        m = keep & (records.class_index == c)
        ious.append(records.inter[m].sum() / max(records.union[m].sum(), 1))
    return float(np.mean(ious)) if ious else float("nan")


def size_bin_edges(input_size: int) -> list[int]:
    """Fig. 9's bin edges: ten 500-pixel bins up to 5000 px on the paper's 321x321 input, their
    areas scaled by (input_size / 321)^2 when the input is smaller (kept as is when larger)."""
    scale = min(1.0, (input_size / PAPER_INPUT) ** 2)
    return [round(lo * scale) for lo in range(0, PAPER_MAX_SIZE + 1, PAPER_BIN)]


def miou_by_object_size(records: Records, edges: Sequence[int]) -> list[dict[str, Any]]:
    """Fig. 9: class-mIoU of the episodes whose object (query foreground pixels) falls in each
    bin [lo, hi) of `edges` (NaN for an empty bin); larger objects are left out, as in the paper."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (records.object_size >= lo) & (records.object_size < hi)
        n = int(m.sum())
        miou = class_miou(records, m) if n else float("nan")
        out.append({"bin": f"{lo}-{hi}", "low": lo, "high": hi, "episodes": n, "miou": miou})
    return out


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE embedding (scikit-learn) of (E,C) features; perplexity capped for few points."""
    from sklearn.manifold import TSNE

    n = features.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 episodes, got {n}: collect more episodes")
    perplexity = min(perplexity, (n - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def per_class_table(
    records: Records, names: Mapping[int, str], classes: Sequence[int]
) -> list[dict[str, Any]]:
    """Per-class IoU (Table VIII style) with episode counts, via the package's ClassMIoU and
    FB-IoU metrics; `classes` are the fold's test class ids in class-index order (e.g.
    `datamodule.split_classes("test")`). A class no episode drew has 0 episodes and IoU NaN;
    the last row is the class-mIoU and FB-IoU."""
    if len(classes) != records.n_classes:
        raise ValueError(f"{len(classes)} classes given, the records have {records.n_classes}")
    miou, fb = ClassMIoU(records.n_classes), FBIoU()
    for pred, target, class_index in records.batches:
        miou.update(pred, target, class_index)
        fb.update(pred, target)
    rows = [
        {
            "class": names.get(int(cid), f"class {cid}"),
            "episodes": int((records.class_index == idx).sum()),
            "iou": iou,
        }
        for idx, (cid, iou) in enumerate(zip(classes, miou.per_class().tolist(), strict=True))
    ]
    rows.append({"class": "class-mIoU", "episodes": len(records.episode),
                 "iou": miou.compute().item(), "fbiou": fb.compute().item()})  # fmt: skip
    return rows


def format_per_class(tables: Mapping[str, list[dict[str, Any]]]) -> str:
    """`per_class_table`s of several models on the same episodes as one text table: a column
    per model, "not drawn" for a class no episode drew, then the class-mIoU and FB-IoU rows."""
    first = next(iter(tables.values()))
    width = max(16, *(len(row["class"]) + 2 for row in first))
    lines = [f"{'class':<{width}}{'episodes':>9}" + "".join(f"{m:>12}" for m in tables)]
    for i, row in enumerate(first):
        cells = [
            f"{'not drawn':>12}" if row["episodes"] == 0 else f"{t[i]['iou']:12.3f}"
            for t in tables.values()
        ]
        lines.append(f"{row['class']:<{width}}{row['episodes']:>9}" + "".join(cells))
    fbiou = "".join(f"{t[-1]['fbiou']:12.3f}" for t in tables.values())
    lines.append(f"{'FB-IoU':<{width}}{'':>9}{fbiou}")
    return "\n".join(lines)


def episode_iou(records: Records) -> np.ndarray:
    """(E,) foreground IoU of every episode (NaN where prediction and target have none)."""
    union = records.union.astype(float)
    return np.divide(records.inter, union, out=np.full(union.shape, np.nan), where=union > 0)


def worst_episodes(records: Records, k: int) -> np.ndarray:
    """Fig. 12: the episode numbers of the `k` lowest foreground IoUs, worst first (ties in
    episode order; episodes without an IoU are skipped)."""
    iou = episode_iou(records)
    order = np.argsort(iou, kind="stable")  # NaN sorts last
    return records.episode[order[: min(k, int(np.isfinite(iou).sum()))]]


def show_episodes(
    net: nn.Module, dataset: Dataset, episodes: Sequence[int], n_classes: int
) -> list[EpisodeShow]:
    """The given episodes of an episode dataset (episode numbers, e.g. `worst_episodes`) run
    through `net` and kept for display, in the given order."""
    batch = collate_episodes([dataset[int(e)] for e in episodes])
    return collect(net, [batch], n_classes, show=len(episodes)).shown


def cosine_map(features: Tensor, prototype: Tensor) -> Tensor:
    """Eq. 13 at every position: cos(x_ij, p) of (B,C,h,w) features and a (B,C) prototype ->
    (B,h,w); 0 where a feature vector is zero."""
    return F.cosine_similarity(features, prototype[:, :, None, None], dim=1)


@torch.no_grad()
def support_similarity(net: nn.Module, episodes: Sequence[EpisodeShow]) -> Tensor:
    """Fig. 11: per episode, the cosine similarity (Eq. 13) of the support prototype with its
    own support feature map, (N,H,W) at the input size, for the first shot.

    With SDPM these are the reweighted features F~_s = F_s * a' and p'_s = GAP(F~_s, M_s)
    (Eq. 3); without (PFENet) F_s and p_s = GAP(F_s, M_s) (Eq. 2). F_s and a are read by
    forward hooks on `down_supp` and SDPM's `se_supp` during `net.trace`, which they leave
    unchanged; the prototype is pooled with the network's own mask resize and eps."""
    net.eval()
    device = next(net.parameters()).device
    support = torch.stack([ep.support_image for ep in episodes]).to(device)
    mask = torch.stack([ep.support_mask for ep in episodes]).to(device)
    query = torch.stack([ep.query for ep in episodes]).to(device)
    feats: list[Tensor] = []
    weights: list[Tensor] = []
    hooks = [net.down_supp.register_forward_hook(lambda _m, _i, out: feats.append(out))]
    if net.sdpm is not None:
        hooks.append(net.sdpm.se_supp.register_forward_hook(lambda _m, _i, o: weights.append(o)))
    try:
        net.trace(query, support[:, None], mask[:, None])
    finally:
        for hook in hooks:
            hook.remove()
    s = feats[0].float()
    m = resize((mask[:, None] == 1).to(s.dtype), s.shape[-2:])
    p = masked_gap(s, m, net.mask_eps)
    if weights:
        factor = reweight(weights[0].float())
        s, p = s * factor, p * factor
    sim = cosine_map(s, p.flatten(1))
    return resize(sim[:, None], mask.shape[-2:])[:, 0].cpu()


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
