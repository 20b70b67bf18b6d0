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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone
from .layers import FEMDecoder, masked_gap, resize, segmentation_ce
from .sdaanet import SDAANet, TrainOutput, _shape, host_checks


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
                f"got {_shape(support_images)}"
            )
        if support_masks.dim() != 5 or support_masks.shape[:3] != support_images.shape[:3]:
            raise ValueError(
                f"support_masks must have shape (B,N={n},K,H,W) matching support_images, "
                f"got {_shape(support_masks)}"
            )

    def _check_query_labels(self, query_mask: Tensor) -> None:
        # a query may lose its classes to augmentation (all background): that is allowed here;
        # episodes whose query holds none of the classes are refused where they are planned
        valid = (query_mask >= 0) & (query_mask <= self.ways) | (query_mask == 255)
        if host_checks(valid) and not bool(valid.all()):
            bad = torch.unique(query_mask[~valid])[:5].tolist()
            raise ValueError(f"query_mask holds {bad}; a {self.ways}-way label is 0..N or 255")

    def forward(
        self,
        query: Tensor,
        support_images: Tensor,
        support_masks: Tensor,
        query_mask: Tensor | None = None,
    ) -> Tensor | TrainOutput:
        """Segment the query into background + N classes. Eval: logits; train: losses too."""
        self._check_ways(support_images, support_masks)
        for n in range(self.ways):
            self._check_inputs(query, support_images[:, n], support_masks[:, n])
        train = self.training
        if train:
            if query_mask is None or _shape(query_mask) != (query.shape[0], *query.shape[-2:]):
                got = None if query_mask is None else _shape(query_mask)
                raise ValueError(f"query_mask (B,H,W) is required in training mode, got {got}")
            self._check_query_labels(query_mask)
        size = query.shape[-2:]
        k = support_images.shape[2]
        # the binary network's feature path (and its fast path) over all N*K supports at once
        q_mid, q4, s_mid, s_high, s_masks = self._backbone(
            query, support_images.flatten(1, 2), support_masks.flatten(1, 2)
        )
        q = self.down_query(q_mid)
        prototypes, queries, attentions, priors = [], [], [], []
        kd, saam_loss = [], []
        for n in range(self.ways):
            shots = slice(n * k, (n + 1) * k)
            labels = support_masks[:, n]
            supports = [self.down_supp(mid) for mid in s_mid[shots]]
            protos = [
                masked_gap(s, m, self.mask_eps)
                for s, m in zip(supports, s_masks[shots], strict=True)
            ]
            if self.saam is not None:
                attn, loss = self.saam(q, supports, protos, labels if train else None)
                attentions.append(attn)
                saam_loss.append(loss)
            prior = self.prior_mask(q4, s_high[shots], s_masks[shots], q_mid.shape[-2:], self.fast)
            priors.append(resize(prior, q.shape[-2:]))
            if self.sdpm is None:
                queries.append(q)
                prototypes.append(torch.stack(protos).mean(0))
                continue
            q_n, proto_n, _ = self.sdpm(q, protos)
            queries.append(q_n)
            prototypes.append(proto_n)
            if train:
                kd.extend(self._distill(q, protos, query_mask, n + 1))
        proto = self.proto_mlp(torch.cat(prototypes, dim=1))
        logits, aux_logits = self.decoder(torch.stack(queries).mean(0), proto, priors + attentions)
        logits = resize(logits + self._class_evidence(priors, attentions), size)
        if not train:
            return logits
        zero = q.new_zeros(())
        aux = torch.stack([segmentation_ce(resize(a, size), query_mask) for a in aux_logits])
        return TrainOutput(
            logits,
            {
                "main": segmentation_ce(logits, query_mask),
                "aux": aux.mean(),
                "kd": torch.stack(kd).mean() if kd else zero,
                "saam": torch.stack(saam_loss).mean() if saam_loss else zero,
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
