"""SDPM: self-distillation guided prototype module (paper Sec. III-B, Eqs. 2-9; D1-D5).

Three switches select between the authors' code (default) and the paper:

* ``teacher``: ``code`` (D1, D3) softmax of the mean prototype at temperature T, KLDivLoss
  ``reduction='mean'`` (averaged over all B*C elements) times ``kd_alpha * T**2``; ``paper``
  (Eqs. 4-5) ``d_t = (softmax(p'_s) + softmax(p'_q)) / 2`` at T=1 and KL(d_t || d_s) summed over
  channels, mean over the batch. Eq. 5 as printed has its sign flipped (it is <= 0); we use the
  proper non-negative KL. The teacher is never detached (as in the code).
* ``kshot_strategy`` (teacher query prototype pq_k): ``official`` (D2, D5) pq = GAP(Q, M_q) of
  the un-reweighted query, shared by all shots; ``separate`` (Eqs. 8-9) pq_k = GAP(Q * a'_k, M_q);
  ``integral`` (Eqs. 6-7) pq = GAP(Q * (mean_k a_k + 1) / 2, M_q), shared. KD = mean_k KD_k.
* ``query_reweight`` (decoder query): ``code`` (D4) Q * prod_k a'_k * (mean_k a'_k + 1) / 2;
  ``paper`` Q * mean_k a'_k (Eq. 3 for K=1, the average of Eq. 8 for K>1, equal to Eq. 6).

Here a_k = se_supp(p_k) and a'_k = (a_k + 1) / 2 (Eq. 3). The decoder prototype is
mean_k a'_k * p_k (D6); a'_k * p_k equals GAP(S_k * a'_k, m_k) exactly since a'_k is per-channel.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import masked_gap

TEACHERS = ("code", "paper")
KSHOT_STRATEGIES = ("official", "separate", "integral")
QUERY_REWEIGHTS = ("code", "paper")


def check_switches(teacher: str, kshot_strategy: str, query_reweight: str) -> None:
    """ValueError naming the first switch whose value is not one of its choices."""
    for value, allowed, name in [
        (teacher, TEACHERS, "teacher"),
        (kshot_strategy, KSHOT_STRATEGIES, "kshot_strategy"),
        (query_reweight, QUERY_REWEIGHTS, "query_reweight"),
    ]:
        if value not in allowed:
            raise ValueError(f"{name}={value!r}; expected one of {allowed}")


def reweight(a: Tensor) -> Tensor:
    """Eq. 3 fusion: (v * F + F) / 2 = F * (v + 1) / 2, i.e. the factor a' = (a + 1) / 2."""
    return (a + 1.0) / 2.0


def kd_code(student: Tensor, teacher: Tensor, temperature: float, alpha: float) -> Tensor:
    """The authors' ``loss_fn_kd`` (D1, D3): KLDiv('mean')(log_softmax(s/T), softmax(t/T))*a*T^2.

    'mean' = pointwise KL summed and divided by all B*C elements (written out explicitly, as
    torch deprecates reduction='mean' for ``kl_div``).
    """
    log_p = F.log_softmax(student.flatten(1) / temperature, dim=1)
    q = F.softmax(teacher.flatten(1) / temperature, dim=1)
    kl = F.kl_div(log_p, q, reduction="sum") / log_p.numel()
    return kl * (alpha * temperature**2)


def kd_paper(student: Tensor, query: Tensor) -> Tensor:
    """Eqs. 4-5: KL(d_t || d_s) with d_t = (d_s + d_q) / 2, summed over C, mean over B."""
    log_s = F.log_softmax(student.flatten(1), dim=1)
    log_q = F.log_softmax(query.flatten(1), dim=1)
    log_t = torch.logaddexp(log_s, log_q) - math.log(2.0)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()


class SDPM(nn.Module):
    """Support-guided channel reweighting + self-distillation (Fig. 4, Fig. 5).

    ``se_supp`` = Conv1x1 C->C/4 (+bias), ReLU, Conv1x1 C/4->C (+bias), Sigmoid (keys
    ``se_supp.0``, ``se_supp.2``), applied to the raw 1x1 prototype.
    """

    def __init__(
        self,
        dim: int = 256,
        teacher: str = "code",
        kshot_strategy: str = "official",
        query_reweight: str = "code",
        kd_temperature: float = 5.0,
        kd_alpha: float = 0.9,
        mask_eps: float = 5e-4,
    ) -> None:
        super().__init__()
        check_switches(teacher, kshot_strategy, query_reweight)
        self.teacher = teacher
        self.kshot_strategy = kshot_strategy
        self.query_reweight = query_reweight
        self.kd_temperature = kd_temperature
        self.kd_alpha = kd_alpha
        self.mask_eps = mask_eps
        self.se_supp = nn.Sequential(
            nn.Conv2d(dim, dim // 4, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // 4, dim, 1),
            nn.Sigmoid(),
        )

    def teacher_prototypes(
        self, query: Tensor, query_mask: Tensor, attentions: Sequence[Tensor]
    ) -> list[Tensor]:
        """The query prototype pq_k used in each shot's teacher (per ``kshot_strategy``).

        ``attentions`` are the raw se outputs a_k (B,C,1,1); ``query_mask`` is (B,1,h,w).
        """
        k = len(attentions)
        if self.kshot_strategy == "official":
            return [masked_gap(query, query_mask, self.mask_eps)] * k
        if self.kshot_strategy == "separate":
            return [masked_gap(query * reweight(a), query_mask, self.mask_eps) for a in attentions]
        mean_a = torch.stack(list(attentions)).mean(0)
        return [masked_gap(query * reweight(mean_a), query_mask, self.mask_eps)] * k

    def decoder_query(self, query: Tensor, factors: Sequence[Tensor]) -> Tensor:
        """Decoder query from the reweighting factors a'_k (per ``query_reweight``)."""
        mean_f = torch.stack(list(factors)).mean(0)
        if self.query_reweight == "paper":
            return query * mean_f
        out = query
        for f in factors:  # the code's cumulative in-loop reweighting (D4)
            out = out * f
        return out * reweight(mean_f)

    def distill(self, student: Tensor, query_proto: Tensor) -> Tensor:
        """KD loss of one shot between p'_k and its teacher (per ``teacher``), in fp32 with
        autocast off: a KL divergence is >= 0, and in bf16 its rounding made it negative."""
        with torch.autocast(student.device.type, enabled=False):
            student, query_proto = student.float(), query_proto.float()
            if self.teacher == "paper":
                return kd_paper(student, query_proto)
            teacher = (query_proto + student) / 2.0
            return kd_code(student, teacher, self.kd_temperature, self.kd_alpha)

    def forward(
        self, query: Tensor, prototypes: Sequence[Tensor], query_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``query`` Q (B,C,h,w), raw support prototypes p_k (B,C,1,1), hard query mask M_q
        (B,1,h,w) or ``None`` (no KD; inference).

        Returns (decoder query, decoder prototype mean_k a'_k p_k, KD loss (0-dim)).
        """
        attentions = [self.se_supp(p) for p in prototypes]
        factors = [reweight(a) for a in attentions]
        students = [f * p for f, p in zip(factors, prototypes, strict=True)]
        prototype = torch.stack(students).mean(0)
        kd = query.new_zeros(())
        if query_mask is not None:
            teachers = self.teacher_prototypes(query, query_mask, attentions)
            kd = torch.stack(
                [self.distill(s, t) for s, t in zip(students, teachers, strict=True)]
            ).mean()
        return self.decoder_query(query, factors), prototype, kd
