"""SAAM: supervised affinity attention module (paper Sec. III-C, Eqs. 10-11; D7-D10).

A trunk ``simple_mask`` = [Conv3x3 2C->4C (+bias), ReLU, PSPModule(4C -> C)] shared by the
support and query branches (D7). Support branch (training only): cat[S_k, p_k] -> trunk ->
``s_cls`` (1x1 -> 2), CE (ignore 255) against the support label, averaged over shots (D8, D9;
Eq. 11 prints a sum). Query branch: cat[Q, mean_k p_k] -> trunk -> ``q_maskgeneration``
(1x1 -> 1), a raw logit used as attention (D10). Inputs are the raw, un-reweighted features and
prototypes (D8).
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .layers import PSPModule, resize, segmentation_ce


class SAAM(nn.Module):
    """Supervised affinity attention; ``dim`` = C (the authors' 256)."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.simple_mask = nn.Sequential(
            nn.Conv2d(2 * dim, 4 * dim, 3, padding=1),
            nn.ReLU(inplace=True),
            PSPModule(4 * dim, dim, (1, 2, 3, 6)),
        )
        self.s_cls = nn.Conv2d(dim, 2, 1)
        self.q_maskgeneration = nn.Conv2d(dim, 1, 1)

    @staticmethod
    def _with_prototype(feat: Tensor, prototype: Tensor) -> Tensor:
        return torch.cat([feat, prototype.expand(-1, -1, *feat.shape[-2:])], dim=1)

    def support_loss(
        self, supports: Sequence[Tensor], prototypes: Sequence[Tensor], labels: Tensor
    ) -> Tensor:
        """Eqs. 10-11 as in the code: mean over shots of CE(ignore 255) of the upsampled
        support prediction. ``labels`` (B,K,H,W) with 0/1/255."""
        losses = []
        for k, (feat, proto) in enumerate(zip(supports, prototypes, strict=True)):
            logits = self.s_cls(self.simple_mask(self._with_prototype(feat, proto)))
            logits = resize(logits, labels.shape[-2:])
            losses.append(segmentation_ce(logits, labels[:, k]))
        return torch.stack(losses).mean()

    def attention(self, query: Tensor, prototype: Tensor) -> Tensor:
        """Query attention map (B,1,h,w), a raw logit (D10)."""
        return self.q_maskgeneration(self.simple_mask(self._with_prototype(query, prototype)))

    def forward(
        self,
        query: Tensor,
        supports: Sequence[Tensor],
        prototypes: Sequence[Tensor],
        support_labels: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return (attention (B,1,h,w), support loss). The support branch runs only when
        ``support_labels`` is given (training), before the query branch as in the code."""
        loss = query.new_zeros(())
        if support_labels is not None:
            loss = self.support_loss(supports, prototypes, support_labels)
        mean_proto = torch.stack(list(prototypes)).mean(0)
        return self.attention(query, mean_proto), loss
