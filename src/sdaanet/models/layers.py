"""Shared building blocks: masked GAP, PFENet's prior mask, PSP trunk and the FEM decoder.

D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize with ``align_corners=True`` (used throughout the authors' code)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def segmentation_ce(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Cross entropy averaged over non-ignored pixels; 0 (not NaN) if every pixel is ignored."""
    target = target.long()
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)


def masked_gap(feat: Tensor, mask: Tensor, eps: float = 5e-4) -> Tensor:
    """Masked global average pooling (Eq. 2; the authors' ``Weighted_GAP``, code map: masked GAP).

    ``sum(F * m) / (sum(m) + eps)`` over the spatial dimensions, for a (soft) mask ``m`` of
    shape (B,1,h,w). Returns (B,C,1,1). The eps keeps an empty mask finite (result 0).
    """
    area = mask.sum(dim=(2, 3), keepdim=True) + eps
    return (feat * mask).sum(dim=(2, 3), keepdim=True) / area


class PriorMask(nn.Module):
    """PFENet's training-free prior (D11; code map: prior mask).

    Per shot: cosine similarity (eps 1e-7 on the norm product) of every query layer4 pixel with
    every masked support layer4 pixel, max over support pixels, min-max normalisation over query
    pixels per image (eps 1e-7), resize to ``size``; then the mean over shots.
    """

    def __init__(self, cos_eps: float = 1e-7, norm_eps: float = 1e-7) -> None:
        super().__init__()
        self.cos_eps = cos_eps
        self.norm_eps = norm_eps

    def forward(
        self,
        query_high: Tensor,
        support_high: Sequence[Tensor],
        support_masks: Sequence[Tensor],
        size: Sequence[int],
        masked_only: bool = False,
    ) -> Tensor:
        """``query_high`` (B,C,h,w); per shot (B,C,h',w') features and (B,1,*,*) soft masks.

        ``masked_only`` (the fast path) compares only the support pixels inside some mask of the
        batch: the others are zero features, whose similarity is exactly 0, so the max over
        them is a floor of 0. It applies on the CPU only: the boolean selection has a
        data-dependent size, which on CUDA makes the host wait for the GPU; there every pixel
        is compared, with the same result. Returns (B,1,*size) in [0,1].
        """
        masked_only = masked_only and query_high.device.type == "cpu"
        b, c, h, w = query_high.shape
        q = query_high.reshape(b, c, h * w)
        q_norm = q.norm(p=2, dim=1, keepdim=True)  # (B,1,hw)
        priors = []
        for s_feat, s_mask in zip(support_high, support_masks, strict=True):
            m = resize(s_mask, s_feat.shape[-2:])
            s = (s_feat * m).flatten(2).transpose(1, 2)  # (B,hw',C)
            keep = (m > 0).flatten(1).any(0) if masked_only else None
            if keep is not None and not bool(keep.any()):  # no support pixel: similarity 0
                sim = q.new_zeros(b, h * w)
            else:
                if keep is not None:
                    s = s[:, keep]
                s_norm = s.norm(p=2, dim=2, keepdim=True)  # (B,hw',1)
                sim = torch.bmm(s, q) / (torch.bmm(s_norm, q_norm) + self.cos_eps)
                sim = sim.max(dim=1).values  # (B,hw)
                if keep is not None and not bool(keep.all()):
                    sim = sim.clamp(min=0.0)  # the dropped pixels' similarity
            lo = sim.min(dim=1, keepdim=True).values
            hi = sim.max(dim=1, keepdim=True).values
            sim = (sim - lo) / (hi - lo + self.norm_eps)
            priors.append(resize(sim.view(b, 1, h, w), size))
        return torch.cat(priors, dim=1).mean(dim=1, keepdim=True)


class PSPModule(nn.Module):
    """Pyramid pooling (the authors' ``_PSPModule``, code map: SAAM).

    ``stages[i]`` = [AdaptiveAvgPool(b), Conv1x1 in->in/4 (no bias), BN, ReLU] for b in
    ``pool_sizes``; ``bottleneck`` = [Conv3x3 2*in->out (no bias), BN, ReLU, Dropout2d(0.1)] on
    cat[input, upsampled stages]. Indices mirror the authors' keys (``stages.i.1``, ``.2``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, pool_sizes: Sequence[int] = (1, 2, 3, 6)
    ) -> None:
        super().__init__()
        width = in_channels // len(pool_sizes)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
            for b in pool_sizes
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(
                in_channels + width * len(pool_sizes), out_channels, 3, padding=1, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
        )

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pyramids = [x] + [resize(stage(x), size) for stage in self.stages]
        return self.bottleneck(torch.cat(pyramids, dim=1))


def _conv_relu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.ReLU(inplace=True)]


def _head(dim: int, classes: int) -> nn.Sequential:
    """Conv3x3 (no bias), ReLU, Dropout2d(0.1), Conv1x1 -> classes (keys ``.0``, ``.3``)."""
    return nn.Sequential(*_conv_relu(dim, dim, 3), nn.Dropout2d(0.1), nn.Conv2d(dim, classes, 1))


def pyramid_bins(scales: Sequence[float], size: Sequence[int]) -> list[tuple[int, int]]:
    """Decoder bin sizes: a scale <= 1.0 is a fraction of the feature size (``int()`` floor, at
    least 1, per side), otherwise an absolute square bin (the authors' ``ppm_scales``)."""
    h, w = size
    bins = []
    for s in scales:
        if s <= 1.0:
            bins.append((max(1, int(h * s)), max(1, int(w * s))))
        else:
            bins.append((int(s), int(s)))
    return bins


class FEMDecoder(nn.Module):
    """PFENet's feature enrichment module + classifier (code map: decoder), SD-AANet variant.

    Per bin: merge [prototype, query, prior(, attention)] (SD-AANet order, ``sdaanet_order``) or
    [query, prototype, prior] (PFENet order) with ``init_merge``; from the second bin on, refine
    with the previous (coarser-index) bin via ``alpha_conv``; residual ``beta_conv``;
    auxiliary logits from ``inner_cls``. Then ``res1``/``res2``/``cls`` on the concatenation of
    the upsampled bins. Module indices mirror the authors' keys.
    """

    def __init__(
        self,
        dim: int,
        ppm_scales: Sequence[float],
        extra_channels: int = 1,
        sdaanet_order: bool = True,
        classes: int = 2,
    ) -> None:
        super().__init__()
        self.ppm_scales = [float(s) for s in ppm_scales]
        self.sdaanet_order = sdaanet_order
        n = len(self.ppm_scales)
        merge_in = 2 * dim + extra_channels
        self.init_merge = nn.ModuleList(
            nn.Sequential(*_conv_relu(merge_in, dim, 1)) for _ in range(n)
        )
        self.alpha_conv = nn.ModuleList(
            nn.Sequential(*_conv_relu(2 * dim, dim, 1)) for _ in range(n - 1)
        )
        self.beta_conv = nn.ModuleList(
            nn.Sequential(*_conv_relu(dim, dim, 3), *_conv_relu(dim, dim, 3)) for _ in range(n)
        )
        self.inner_cls = nn.ModuleList(_head(dim, classes) for _ in range(n))
        self.res1 = nn.Sequential(*_conv_relu(n * dim, dim, 1))
        self.res2 = nn.Sequential(*_conv_relu(dim, dim, 3), *_conv_relu(dim, dim, 3))
        self.cls = _head(dim, classes)

    def forward(
        self, query: Tensor, prototype: Tensor, extras: Sequence[Tensor]
    ) -> tuple[Tensor, list[Tensor]]:
        """``query`` (B,C,h,w), ``prototype`` (B,C,1,1), ``extras`` (B,1,h,w) maps (prior, attn).

        Returns logits (B,2,h,w) and the per-bin auxiliary logits (B,2,b,b).
        """
        size = query.shape[-2:]
        merged: list[Tensor] = []
        aux: list[Tensor] = []
        for idx, bin_size in enumerate(pyramid_bins(self.ppm_scales, size)):
            q = F.adaptive_avg_pool2d(query, bin_size)
            s = prototype.expand(-1, -1, *bin_size)
            maps = [resize(e, bin_size) for e in extras]
            parts = [s, q, *maps] if self.sdaanet_order else [q, s, *maps]
            x = self.init_merge[idx](torch.cat(parts, dim=1))
            if idx >= 1:
                prev = resize(merged[idx - 1], bin_size)
                x = self.alpha_conv[idx - 1](torch.cat([x, prev], dim=1)) + x
            x = self.beta_conv[idx](x) + x
            if self.training:  # evaluation does not use the auxiliary logits
                aux.append(self.inner_cls[idx](x))
            merged.append(resize(x, size))
        x = self.res1(torch.cat(merged, dim=1))
        x = self.res2(x) + x
        return self.cls(x), aux
