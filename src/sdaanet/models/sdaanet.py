"""SD-AANet (paper Fig. 3) and, with both modules off, the PFENet baseline (Table IV).

backbone (frozen) -> Q = down_query(cat[l3, l2]), S_k = down_supp(...) -> prototypes
p_k = GAP(S_k, m_k) -> SAAM attention (optional) + PFENet prior -> SDPM (optional) -> FEM decoder.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone
from .inputs import MIN_SIZE, check_episode, check_query_mask
from .layers import FEMDecoder, PriorMask, masked_gap, resize, segmentation_ce
from .saam import SAAM
from .sdpm import KSHOT_STRATEGIES, QUERY_REWEIGHTS, SDPM, TEACHERS, check_switches

# The authors' checkpoint key prefixes (after stripping ``module.``) -> ours (a 1:1 rename).
AUTHORS_KEY_PREFIXES: dict[str, str] = {
    **{f"layer{i}.": f"backbone.layer{i}." for i in range(5)},
    "down_query.": "down_query.",
    "down_supp.": "down_supp.",
    "se_supp.": "sdpm.se_supp.",
    "simple_mask.": "saam.simple_mask.",
    "s_cls.": "saam.s_cls.",
    "q_maskgeneration.": "saam.q_maskgeneration.",
    **{
        f"{m}.": f"decoder.{m}."
        for m in ("init_merge", "alpha_conv", "beta_conv", "inner_cls", "res1", "res2", "cls")
    },
}


class TrainOutput(NamedTuple):
    """Training-mode output of a network: its logits and its named, unweighted loss terms (the
    LightningModule weights them by the network's ``loss_weights``).

    SD-AANet's terms: ``main`` CE (ignore 255) of the final logits, ``aux`` the mean auxiliary
    CE over the pyramid bins (D13), ``kd`` the self-distillation loss (0 when SDPM is off),
    ``saam`` the SAAM support CE (0 when SAAM is off); Eq. 12 weights them 1, aux_weight,
    alpha, beta.
    """

    logits: Tensor  # (B,C,H,W)
    losses: dict[str, Tensor]


class SDAANetTrace(NamedTuple):
    """What the network computed for an episode (eval mode), for the paper's analysis figures."""

    logits: Tensor  # (B,2,H,W)
    prior: Tensor  # (B,1,H,W) PFENet prior (input size from `trace()`, else feature size)
    attention: Tensor | None  # (B,1,H,W) SAAM query attention (Fig. 10), sized as the prior
    prototype: Tensor  # (B,C) mean masked-GAP support prototype (Fig. 8, "raw")
    sdpm_prototype: Tensor | None  # (B,C) SDPM-reweighted prototype, Eq. 3 (Fig. 8)


class SDAANet(nn.Module):
    """SD-AANet few-shot segmenter.

    ``forward(query (B,3,H,W), support_images (B,K,3,H,W), support_masks (B,K,H,W),
    query_mask=None)``. Any H, W >= 65 works: the final logits are bilinearly resized
    (align_corners=True) to (H, W). Masks hold 0 / 1 / 255 (ignore).

    * eval mode: returns logits (B,2,H,W). ``query_mask`` is ignored (D12), so the output is
      identical whether or not it is given; the KD term and the SAAM support branch are skipped.
    * train mode: ``query_mask`` is required; returns ``TrainOutput``.

    ``sdpm=False`` uses p = mean_k p_k and the un-reweighted Q (PFENet); ``saam=False`` drops
    the attention channel. With both off the decoder uses PFENet's concat order [Q, p, prior]
    (so PFENet checkpoints map 1:1), otherwise SD-AANet's [p, Q, prior(, attn)].

    Every argument's default lives in ``conf/model/sdaanet.yaml`` (the authors' code); build
    one with ``hydra.utils.instantiate(cfg.model)``. ``alpha``, ``beta`` and ``aux_weight`` are
    the loss weights of Eq. 12 (+ D13), exposed as ``loss_weights``.
    """

    # arguments that change training, not the network an evaluation builds (models/network.py)
    TRAINING_ONLY: ClassVar[frozenset[str]] = frozenset(
        {"alpha", "beta", "aux_weight", "kd_alpha", "kd_temperature", "dropout"}
    )
    # what each argument takes, checked before anything runs (models/network.py)
    ARGUMENTS: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "alpha": "weight", "beta": "weight", "aux_weight": "weight", "kd_alpha": "weight",
        "kd_temperature": "positive number", "mask_eps": "positive number",
        "dropout": "fraction", "reduce_dim": "positive", "sdpm": "boolean", "saam": "boolean",
        "kshot_strategy": KSHOT_STRATEGIES, "teacher": TEACHERS,
        "query_reweight": QUERY_REWEIGHTS, "ppm_scales": "positive numbers",
    }  # fmt: skip

    @staticmethod
    def summary_line(node: Mapping[str, Any]) -> str:
        """`SDAANet(backbone=resnet18, reduce_dim=64, sdpm, saam)`: a network node in one phrase."""
        name = str(node.get("_target_", "?")).rsplit(".", 1)[-1]
        backbone = node.get("backbone") or {}
        parts = [f"backbone={backbone.get('name') if isinstance(backbone, Mapping) else backbone}"]
        parts.append(f"reduce_dim={node.get('reduce_dim')}")
        parts += [m for m in ("sdpm", "saam") if node.get(m)]
        if node.get("ways"):
            parts.append(f"ways={node['ways']}")
        return f"{name}({', '.join(parts)})"

    @staticmethod
    def size_problem(size: int) -> str | None:
        """Why `size` x `size` inputs are refused (>= 65 with (size - 1) % 8 == 0), else None."""
        if size < MIN_SIZE or (size - 1) % 8:
            return (
                f"size {size} is not accepted: it must be >= {MIN_SIZE} with (size - 1) % 8 == 0, "
                "e.g. 65, 321, 417 or 473"
            )
        return None

    def __init__(
        self,
        backbone: Backbone,
        *,
        shot: int,
        ppm_scales: Sequence[float],
        reduce_dim: int,
        dropout: float,
        sdpm: bool,
        saam: bool,
        kshot_strategy: str,
        teacher: str,
        query_reweight: str,
        kd_temperature: float,
        kd_alpha: float,
        mask_eps: float,
        alpha: float,
        beta: float,
        aux_weight: float,
    ) -> None:
        super().__init__()
        check_switches(teacher, kshot_strategy, query_reweight)
        if reduce_dim < 4 or reduce_dim % 4:
            raise ValueError(f"reduce_dim must be a positive multiple of 4, got {reduce_dim}")
        if not ppm_scales:
            raise ValueError("ppm_scales must list at least one decoder bin")
        self.shot = int(shot)
        self.mask_eps = float(mask_eps)
        self.loss_weights = {
            "main": 1.0, "aux": float(aux_weight), "kd": float(alpha), "saam": float(beta)
        }  # fmt: skip
        self.backbone = backbone
        self.down_query = self._reduce(backbone.mid_channels, reduce_dim, dropout)
        self.down_supp = self._reduce(backbone.mid_channels, reduce_dim, dropout)
        self.prior_mask = PriorMask()
        self.fast = False  # the fast path (sdaanet.runtime): batched backbone, masked prior
        self.sdpm = (
            SDPM(
                reduce_dim,
                teacher=teacher,
                kshot_strategy=kshot_strategy,
                query_reweight=query_reweight,
                kd_temperature=kd_temperature,
                kd_alpha=kd_alpha,
                mask_eps=mask_eps,
            )
            if sdpm
            else None
        )
        self.saam = SAAM(reduce_dim) if saam else None
        self.decoder = self._decoder(reduce_dim, ppm_scales)

    def _decoder(self, dim: int, ppm_scales: Sequence[float]) -> FEMDecoder:
        """FEM decoder over [p, Q, prior(, attention)] (PFENet's order with both modules off)."""
        saam = self.saam is not None
        return FEMDecoder(
            dim,
            ppm_scales,
            extra_channels=1 + int(saam),
            sdaanet_order=self.sdpm is not None or saam,
        )

    @staticmethod
    def _reduce(cin: int, cout: int, dropout: float) -> nn.Sequential:
        """Conv1x1 (no bias), ReLU, Dropout2d (code map: mid-level features; keys ``.0.weight``)."""
        return nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True), nn.Dropout2d(dropout)
        )

    def learnable_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter outside the frozen backbone."""
        for name, p in self.named_parameters():
            if not name.startswith("backbone."):
                yield p

    # ---------------------------------------------------------------- features
    def _backbone(
        self, query: Tensor, support_images: Tensor, support_masks: Tensor
    ) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor], list[Tensor]]:
        """Frozen features: query (mid, layer4); per shot (mid, layer4 of masked layer3, mask)."""
        if self.fast and self.backbone.batch_safe:
            return self._backbone_batched(query, support_images, support_masks)
        q3, q_mid = self.backbone.mid(query)
        return q_mid, self.backbone.high(q3), *self._support_features(support_images, support_masks)

    def _backbone_batched(
        self, query: Tensor, support_images: Tensor, support_masks: Tensor
    ) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor], list[Tensor]]:
        """``_backbone`` in two passes for the query and all K supports together (layers 0-3,
        then layer4); equal to separate passes when BN uses running statistics."""
        b = query.shape[0]
        images = torch.cat([query, support_images.transpose(0, 1).flatten(0, 1)])
        f3, mid = self.backbone.mid(images)
        labels = (support_masks == 1).transpose(0, 1).flatten(0, 1)[:, None]
        masks = resize(labels.to(f3.dtype), f3.shape[-2:])
        high = self.backbone.high(torch.cat([f3[:b], f3[b:] * masks]))
        return (
            mid[:b], high[:b], list(mid[b:].split(b)), list(high[b:].split(b)), list(masks.split(b))
        )  # fmt: skip

    def _support_features(
        self, support_images: Tensor, support_masks: Tensor
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per shot: mid features, layer4 of the masked layer3, and the mask m_k = (s == 1)
        resized bilinearly to the layer3 size (soft)."""
        s_mid, s_high, s_masks = [], [], []
        for k in range(support_images.shape[1]):
            s3, mid = self.backbone.mid(support_images[:, k])
            m = resize((support_masks[:, k : k + 1] == 1).to(s3.dtype), s3.shape[-2:])
            s_mid.append(mid)
            s_high.append(self.backbone.high(s3 * m))  # PFENet trick (code map: mid-level features)
            s_masks.append(m)
        return s_mid, s_high, s_masks

    @torch.no_grad()
    def prior(self, query: Tensor, support_images: Tensor, support_masks: Tensor) -> Tensor:
        """PFENet's training-free prior mask (D11), (B,1,H,W) in [0,1] at input size."""
        check_episode(query, support_images, support_masks)
        q_mid, q4, _, s_high, s_masks = self._backbone(query, support_images, support_masks)
        prior = self.prior_mask(q4, s_high, s_masks, q_mid.shape[-2:], self.fast)
        return resize(prior, query.shape[-2:]).clamp_(0.0, 1.0)

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        query: Tensor,
        support_images: Tensor,
        support_masks: Tensor,
        query_mask: Tensor | None = None,
    ) -> Tensor | TrainOutput:
        """Segment the query. Eval: logits (B,2,H,W). Train: ``TrainOutput``."""
        check_episode(query, support_images, support_masks)
        train = self.training
        if train:
            query_mask = check_query_mask(query, query_mask)
            if self.saam is not None and query.shape[0] < 2:
                raise ValueError(
                    "query batch size must be >= 2 in training mode: SAAM's pyramid pooling "
                    "BatchNorm needs more than one value per channel at bin 1"
                )
        trace, aux_logits, kd, saam_loss = self._run(
            query, support_images, support_masks, query_mask if train else None
        )
        if not train:
            return trace.logits
        size = query.shape[-2:]
        main = segmentation_ce(trace.logits, query_mask)
        aux = torch.stack([segmentation_ce(resize(a, size), query_mask) for a in aux_logits]).mean()
        return TrainOutput(trace.logits, {"main": main, "aux": aux, "kd": kd, "saam": saam_loss})

    @torch.no_grad()
    def trace(self, query: Tensor, support_images: Tensor, support_masks: Tensor) -> SDAANetTrace:
        """The eval-mode forward with its prior, SAAM attention and prototypes (Fig. 8, 10)."""
        check_episode(query, support_images, support_masks)
        trace = self._run(query, support_images, support_masks, None)[0]
        size = query.shape[-2:]
        attention = None if trace.attention is None else resize(trace.attention, size)
        return trace._replace(prior=resize(trace.prior, size).clamp(0.0, 1.0), attention=attention)

    def _run(
        self,
        query: Tensor,
        support_images: Tensor,
        support_masks: Tensor,
        query_mask: Tensor | None,
    ) -> tuple[SDAANetTrace, list[Tensor], Tensor, Tensor]:
        """Eq. 1-12 up to the logits; `query_mask` (training only) feeds SAAM's and SDPM's
        losses. Returns the trace, the auxiliary logits, L_KD and L_SAAM."""
        train = query_mask is not None
        size = query.shape[-2:]
        q_mid, q4, s_mid, s_high, s_masks = self._backbone(query, support_images, support_masks)

        q = self.down_query(q_mid)
        supports = [self.down_supp(mid) for mid in s_mid]
        protos = [masked_gap(s, m, self.mask_eps) for s, m in zip(supports, s_masks, strict=True)]

        extras = []
        saam_loss = q.new_zeros(())
        attn = None
        if self.saam is not None:
            attn, saam_loss = self.saam(q, supports, protos, support_masks if train else None)
        prior = self.prior_mask(q4, s_high, s_masks, q_mid.shape[-2:], self.fast)
        extras.append(resize(prior, q.shape[-2:]))
        if attn is not None:
            extras.append(attn)

        kd = q.new_zeros(())
        mean_proto = torch.stack(protos).mean(0)
        sdpm_proto = None
        if self.sdpm is not None:
            mq = None
            if train:  # M_q: nearest-resized hard query mask, only for the KD teacher (D12)
                mq = F.interpolate((query_mask == 1).to(q.dtype)[:, None], q.shape[-2:])
            q_dec, proto, kd = self.sdpm(q, protos, mq)
            sdpm_proto = proto.flatten(1)
        else:
            q_dec, proto = q, mean_proto

        logits, aux_logits = self.decoder(q_dec, proto, extras)
        trace = SDAANetTrace(
            resize(logits, size),
            prior,
            attn,
            mean_proto.flatten(1),
            sdpm_proto,
        )
        return trace, aux_logits, kd, saam_loss
