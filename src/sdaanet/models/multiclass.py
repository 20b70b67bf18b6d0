"""Multi-class few-shot segmentation (paper Sec. III-E, Algorithm 1; Tables VII-VIII).

N support sets (one per class, K shots each) and one query. Per class n: prototypes p_n (masked
GAP), SAAM attention map m_n, PFENet prior, and SDPM's reweighted prototype (Eq. 3) with its KD
loss. The N prototypes are concatenated and an MLP reduces them to the decoder's width (Alg. 1,
lines 4-5); the decoder reads [v_new, F_q, m_1..m_N, prior_1..prior_N] (line 6; the priors are
PFENet's, as in the binary model). F_q is the query feature reweighted by SDPM (Eq. 3) for each
class, averaged over the classes (Q itself when SDPM is off).

Output channels: the paper says the output goes "from 2 to 5" channels, but a softmax over five
class channels has no way to say "background", so this head has N+1: channel 0 is background,
channel n the n-th support class, in support order. The loss is Algorithm 1's
L = CE + alpha * L_KD + beta * L_SAAM (KD and SAAM averaged over the classes; KD only over the
queries that hold the class) plus the auxiliary decoder CE, as in the binary model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone
from .inputs import check_episode, host_checks, shape
from .layers import FEMDecoder, masked_gap, resize, segmentation_ce
from .sdaanet import SDAANet, TrainOutput


class ClassBranch(NamedTuple):
    """What one support class contributes to the decoder (Alg. 1, lines 1-3) and to the loss."""

    query: Tensor  # F_q reweighted by SDPM for this class (Eq. 3; Q itself when SDPM is off)
    prototype: Tensor  # SDPM's prototype (Eq. 3), else the mean masked-GAP prototype
    prior: Tensor  # PFENet's prior at the feature size
    attention: Tensor | None  # SAAM's attention map m_n (None when SAAM is off)
    saam: Tensor | None  # SAAM's support CE (None when SAAM is off)
    kd: list[Tensor]  # SDPM's KD loss over the queries that hold the class (training)


class MultiClassSDAANet(SDAANet):
    """SD-AANet for N-way episodes (module docstring); every other argument as ``SDAANet``.

    ``forward(query (B,3,H,W), support_images (B,N,K,3,H,W), support_masks (B,N,K,H,W),
    query_mask (B,H,W) with 0 = background, n = the n-th support class, 255 = ignore)``.
    Eval: logits (B,N+1,H,W). Train: ``TrainOutput``.
    """

    def __init__(self, backbone: Backbone, *, ways: int, **kwargs) -> None:
        if ways < 2:
            raise ValueError(f"a multi-class model needs ways >= 2, got {ways}")
        self.ways = int(ways)
        super().__init__(backbone, **kwargs)
        dim = self.down_query[0].out_channels
        self.proto_mlp = nn.Sequential(
            nn.Conv2d(self.ways * dim, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1)
        )
        self.evidence = nn.Parameter(torch.ones(1 + int(self.saam is not None)))

    def _decoder(self, dim: int, ppm_scales: Sequence[float]) -> FEMDecoder:
        """FEM decoder over [v_new, F_q, prior_1..N(, m_1..N)] with N+1 classes (Alg. 1)."""
        saam = self.saam is not None
        return FEMDecoder(
            dim,
            ppm_scales,
            extra_channels=self.ways * (1 + int(saam)),
            sdaanet_order=self.sdpm is not None or saam,
            classes=self.ways + 1,
        )

    def _check_ways(self, support_images: Tensor, support_masks: Tensor) -> None:
        n = self.ways
        if support_images.dim() != 6 or support_images.shape[1] != n:
            raise ValueError(
                f"support_images must have shape (B,N={n},K,3,H,W) for a {n}-way model, "
                f"got {shape(support_images)}"
            )
        if support_masks.dim() != 5 or support_masks.shape[:3] != support_images.shape[:3]:
            raise ValueError(
                f"support_masks must have shape (B,N={n},K,H,W) matching support_images, "
                f"got {shape(support_masks)}"
            )

    def _check_query_mask(self, query: Tensor, query_mask: Tensor | None) -> Tensor:
        if query_mask is None or shape(query_mask) != (query.shape[0], *query.shape[-2:]):
            got = None if query_mask is None else shape(query_mask)
            raise ValueError(f"query_mask (B,H,W) is required in training mode, got {got}")
        # a query may lose its classes to augmentation (all background): that is allowed here;
        # episodes whose query holds none of the classes are refused where they are planned
        valid = (query_mask >= 0) & (query_mask <= self.ways) | (query_mask == 255)
        if host_checks(valid) and not bool(valid.all()):
            bad = torch.unique(query_mask[~valid])[:5].tolist()
            raise ValueError(f"query_mask holds {bad}; a {self.ways}-way label is 0..N or 255")
        return query_mask

    def forward(
        self,
        query: Tensor,
        support_images: Tensor,
        support_masks: Tensor,
        query_mask: Tensor | None = None,
    ) -> Tensor | TrainOutput:
        """Segment the query into background + N classes (Alg. 1). Eval: logits (B,N+1,H,W);
        train: ``TrainOutput``."""
        self._check_ways(support_images, support_masks)
        for n in range(self.ways):
            check_episode(query, support_images[:, n], support_masks[:, n])
        if self.training:
            query_mask = self._check_query_mask(query, query_mask)
        k = support_images.shape[2]
        # the binary network's feature path (and its fast path) over all N*K supports at once
        q_mid, q4, s_mid, s_high, s_masks = self._backbone(
            query, support_images.flatten(1, 2), support_masks.flatten(1, 2)
        )
        q = self.down_query(q_mid)
        branches = []
        for n in range(self.ways):  # Alg. 1, lines 1-3: each class on its own
            shots = slice(n * k, (n + 1) * k)
            features = (s_mid[shots], s_high[shots], s_masks[shots])
            branches.append(self._class_branch(n, q, q4, features, support_masks[:, n], query_mask))
        priors = [c.prior for c in branches]
        attentions = [c.attention for c in branches if c.attention is not None]
        proto = self.proto_mlp(torch.cat([c.prototype for c in branches], dim=1))  # lines 4-5
        q_dec = torch.stack([c.query for c in branches]).mean(0)
        logits, aux_logits = self.decoder(q_dec, proto, priors + attentions)  # line 6
        logits = resize(logits + self._class_evidence(priors, attentions), query.shape[-2:])
        if not self.training:
            return logits
        return self._train_output(logits, aux_logits, query_mask, branches)

    def _class_branch(
        self,
        n: int,
        q: Tensor,
        q4: Tensor,
        features: tuple[list[Tensor], list[Tensor], list[Tensor]],
        labels: Tensor,
        query_mask: Tensor | None,
    ) -> ClassBranch:
        """Class n's prototypes, SAAM attention, PFENet prior and SDPM reweighting (and, in
        training, its SAAM and KD losses) from its K shots' backbone `features`."""
        train = self.training
        s_mid, s_high, s_masks = features
        supports = [self.down_supp(mid) for mid in s_mid]
        protos = [masked_gap(s, m, self.mask_eps) for s, m in zip(supports, s_masks, strict=True)]
        attn = saam_loss = None
        if self.saam is not None:
            attn, saam_loss = self.saam(q, supports, protos, labels if train else None)
        prior = resize(self.prior_mask(q4, s_high, s_masks, q.shape[-2:], self.fast), q.shape[-2:])
        if self.sdpm is None:
            return ClassBranch(q, torch.stack(protos).mean(0), prior, attn, saam_loss, [])
        q_n, proto_n, _ = self.sdpm(q, protos)
        kd = self._distill(q, protos, query_mask, n + 1) if train else []
        return ClassBranch(q_n, proto_n, prior, attn, saam_loss, kd)

    def _train_output(
        self,
        logits: Tensor,
        aux_logits: list[Tensor],
        query_mask: Tensor,
        branches: list[ClassBranch],
    ) -> TrainOutput:
        """Algorithm 1's loss terms: CE, the auxiliary CE, KD and SAAM averaged over the classes."""
        size = logits.shape[-2:]
        zero = logits.new_zeros(())
        aux = torch.stack([segmentation_ce(resize(a, size), query_mask) for a in aux_logits])
        kd = [loss for c in branches for loss in c.kd]
        saam = [c.saam for c in branches if c.saam is not None]
        return TrainOutput(
            logits,
            {
                "main": segmentation_ce(logits, query_mask),
                "aux": aux.mean(),
                "kd": torch.stack(kd).mean() if kd else zero,
                "saam": torch.stack(saam).mean() if saam else zero,
            },
        )

    def _class_evidence(self, priors: list[Tensor], attentions: list[Tensor]) -> Tensor:
        """Each class's own prior and attention added to its logit (B,N+1,h,w; 0 for background).

        Alg. 1 does not say how the decoder tells the N maps apart; this skip ties map n to
        channel n with one learnt weight per map type, shared by the classes, so the softmax
        compares the classes' evidence pixel by pixel.
        """
        maps = [torch.cat(priors, dim=1)] + ([torch.cat(attentions, dim=1)] if attentions else [])
        evidence = sum(w * m for w, m in zip(self.evidence, maps, strict=True))
        return F.pad(evidence, (0, 0, 0, 0, 1, 0))

    def _distill(
        self, q: Tensor, protos: list[Tensor], query_mask: Tensor, label: int
    ) -> list[Tensor]:
        """SDPM's KD loss of one class over the queries that hold it (none: no term)."""
        hard = F.interpolate((query_mask == label).to(q.dtype)[:, None], q.shape[-2:])
        holds = hard.flatten(1).any(1)
        if not bool(holds.any()):
            return []
        _, _, loss = self.sdpm(q[holds], [p[holds] for p in protos], hard[holds])
        return [loss]
