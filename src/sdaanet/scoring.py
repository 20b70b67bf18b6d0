"""The scoring rules beside the metrics: which label a prediction is scored against (a test
protocol's `scoring`) and what label 255 counts as. The LightningModule scores by them and the
evaluation record names them (`SCORING`'s words).

`transformed` scores the label transformed with the input; `original` the label at its original
size (batches carry `raw_query_mask`), the prediction's image region (`raw_valid`) resized
bilinearly to it; `original_padded` (PFENet's `ori_resize`) the original label padded
bottom/right with 255 to a square of its longer side, the whole prediction resized bilinearly to
that square. `ignore_boundary=False` counts label 255 as background instead of leaving it out
(HSNet on COCO/FSS, PATNet).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from sdaanet.metrics import IGNORE_INDEX

# each rule and the words an evaluation record says it with (`protocol.scored_on`)
SCORING = {
    "transformed": "transformed label",
    "original": "original label size",
    "original_padded": "original label padded with 255 to a square",
}


def check_scoring(scoring: str) -> str:
    """`scoring` if it is a rule of `SCORING`, else ValueError."""
    if scoring not in SCORING:
        raise ValueError(f"scoring must be one of {', '.join(SCORING)}, got {scoring!r}")
    return scoring


def scored(
    batch: dict[str, Tensor], scores: Tensor, scoring: str
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(prediction, label, class index) to score, by `scoring`: the batch at once for
    `transformed`, else each episode at its label's original size."""
    if scoring == "transformed":
        yield scores.argmax(1), batch["query_mask"], batch["class_index"]
        return
    if "raw_query_mask" not in batch:
        raise ValueError(f"scoring={scoring} needs data.return_raw_label=true")
    sizes = zip(batch["raw_size"].tolist(), batch["raw_valid"].tolist(), strict=True)
    for b, ((h, w), (vh, vw)) in enumerate(sizes):
        target = batch["raw_query_mask"][b : b + 1, :h, :w]
        if scoring == "original":
            region, out = scores[b : b + 1, :, :vh, :vw], (h, w)
        else:  # original_padded: the whole canvas onto the label padded to a square
            side = max(h, w)
            region, out = scores[b : b + 1], (side, side)
            target = F.pad(target, (0, side - w, 0, side - h), value=IGNORE_INDEX)
        pred = F.interpolate(region, out, mode="bilinear", align_corners=True).argmax(1)
        yield pred, target, batch["class_index"][b : b + 1]


def boundary(target: Tensor, ignore_boundary: bool) -> Tensor:
    """`target` with label 255 left out of the scores (kept), or counted as background (0)."""
    return target if ignore_boundary else torch.where(target == IGNORE_INDEX, 0, target)
