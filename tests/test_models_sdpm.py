"""SDPM: reweighting (Eq. 3, D4), KD (D1, D3, Eqs. 4-5) and K-shot teachers (Eqs. 6-9, D5)."""

import math

import torch

from sdaanet.models.layers import masked_gap
from sdaanet.models.sdpm import SDPM, kd_code, kd_paper, reweight

EPS = 5e-4
# Q: 2 channels on a 1x2 map; M_q keeps only the first pixel
Q = torch.tensor([[[[2.0, 4.0]], [[6.0, 8.0]]]])
MQ = torch.tensor([[[[1.0, 0.0]]]])
A1 = torch.tensor([0.2, 0.6]).view(1, 2, 1, 1)
A2 = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)


def vec(*v: float) -> torch.Tensor:
    return torch.tensor(v).view(1, -1, 1, 1)


def test_reweight_is_eq3_average_of_scaled_and_identity():
    f = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(f * reweight(A1), (A1 * f + f) / 2)


def test_code_query_reweight_one_shot_is_double():
    sdpm = SDPM(4, query_reweight="code")
    q = torch.randn(1, 2, 3, 3)
    out = sdpm.decoder_query(q, [reweight(A1)])
    # Q * (a+1)/2 * (a+3)/4 = Q * [0.6*0.8, 0.8*0.9]
    torch.testing.assert_close(out, q * (A1 + 1) / 2 * (A1 + 3) / 4)
    torch.testing.assert_close(out, q * vec(0.48, 0.72))


def test_code_query_reweight_two_shot_product():
    sdpm = SDPM(4, query_reweight="code")
    q = torch.randn(1, 2, 3, 3)
    out = sdpm.decoder_query(q, [reweight(A1), reweight(A2)])
    # a' = [0.6,0.8], [1.0,0.5]: product [0.6,0.4]; (mean a' + 1)/2 = [0.9, 0.825]
    torch.testing.assert_close(out, q * vec(0.54, 0.33))


def test_paper_query_reweight_is_mean_factor():
    sdpm = SDPM(4, query_reweight="paper")
    q = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(sdpm.decoder_query(q, [reweight(A1)]), q * vec(0.6, 0.8))
    out = sdpm.decoder_query(q, [reweight(A1), reweight(A2)])
    torch.testing.assert_close(out, q * vec(0.8, 0.65))


def test_teacher_prototypes_per_strategy_by_hand():
    d = 1.0 + EPS
    cases = {
        "official": [vec(2 / d, 6 / d), vec(2 / d, 6 / d)],  # GAP(Q) before reweighting
        "separate": [vec(1.2 / d, 4.8 / d), vec(2 / d, 3 / d)],  # GAP(Q * a'_k)
        "integral": [vec(1.6 / d, 3.9 / d)] * 2,  # GAP(Q * (mean a + 1)/2), mean a = [.6,.3]
    }
    for strategy, expected in cases.items():
        got = SDPM(4, kshot_strategy=strategy).teacher_prototypes(Q, MQ, [A1, A2])
        assert len(got) == 2
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e)


def test_kd_code_by_hand():
    student, query_proto = vec(0.0, 0.0), vec(2.0, 0.0)
    teacher = (query_proto + student) / 2  # [1, 0]
    loss = kd_code(student, teacher, temperature=5.0, alpha=0.9)
    t = [math.exp(0.2) / (math.exp(0.2) + 1), 1 / (math.exp(0.2) + 1)]  # softmax([1,0]/5)
    kl_mean = sum(ti * (math.log(ti) - math.log(0.5)) for ti in t) / 2  # 'mean' over B*C = 2
    torch.testing.assert_close(loss, torch.tensor(kl_mean * 0.9 * 25))
    got = SDPM(4, teacher="code").distill(student, query_proto)
    torch.testing.assert_close(got, loss)


def test_kd_paper_by_hand_and_non_negative():
    student, query_proto = vec(0.0, 0.0), vec(2.0, 0.0)
    dq = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    dt = [(0.5 + x) / 2 for x in dq]
    kl = sum(ti * math.log(ti / 0.5) for ti in dt)  # KL(d_t || d_s), summed over channels
    torch.testing.assert_close(kd_paper(student, query_proto), torch.tensor(kl))
    torch.testing.assert_close(
        SDPM(4, teacher="paper").distill(student, query_proto), kd_paper(student, query_proto)
    )
    torch.manual_seed(0)
    assert kd_paper(torch.randn(4, 8, 1, 1), torch.randn(4, 8, 1, 1)) >= 0


def test_kd_code_mean_reduction_over_batch_and_channels():
    torch.manual_seed(0)
    s, t = torch.randn(3, 6, 1, 1), torch.randn(3, 6, 1, 1)
    per_sample = [kd_code(s[i : i + 1], t[i : i + 1], 5.0, 0.9) for i in range(3)]
    torch.testing.assert_close(kd_code(s, t, 5.0, 0.9), torch.stack(per_sample).mean())


def test_sdpm_forward_one_shot_with_fixed_attention():
    sdpm = SDPM(4)
    with torch.no_grad():
        for m in (sdpm.se_supp[0], sdpm.se_supp[2]):
            m.weight.zero_()
        sdpm.se_supp[0].bias.zero_()
        sdpm.se_supp[2].bias.copy_(torch.tensor([0.0, 100.0, -100.0, 0.0]))
    a = torch.sigmoid(torch.tensor([0.0, 100.0, -100.0, 0.0])).view(1, 4, 1, 1)
    a_prime = (a + 1) / 2  # [0.75, 1, 0.5, 0.75]
    torch.manual_seed(0)
    q, p, mq = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 1, 1), torch.ones(2, 1, 3, 3)
    q_dec, proto, kd = sdpm(q, [p], mq)
    torch.testing.assert_close(proto, a_prime * p)  # D6
    torch.testing.assert_close(q_dec, q * a_prime * (a_prime + 1) / 2)  # D4
    pq = masked_gap(q, mq, EPS)
    torch.testing.assert_close(kd, kd_code(a_prime * p, (pq + a_prime * p) / 2, 5.0, 0.9))
    q_dec2, proto2, kd2 = sdpm(q, [p], None)  # no mask: no KD, same outputs
    assert kd2 == 0 and torch.equal(q_dec2, q_dec) and torch.equal(proto2, proto)


def test_sdpm_kd_is_mean_over_shots_and_not_detached():
    torch.manual_seed(0)
    sdpm = SDPM(8, kshot_strategy="separate")
    q = torch.randn(2, 8, 3, 3, requires_grad=True)
    protos = [torch.randn(2, 8, 1, 1) for _ in range(3)]
    mq = (torch.rand(2, 1, 3, 3) > 0.5).float()
    _, _, kd = sdpm(q, protos, mq)
    a = [sdpm.se_supp(p) for p in protos]
    teachers = sdpm.teacher_prototypes(q, mq, a)
    per_shot = [
        sdpm.distill(reweight(ak) * p, t) for ak, p, t in zip(a, protos, teachers, strict=True)
    ]
    torch.testing.assert_close(kd, torch.stack(per_shot).mean())
    kd.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0  # teacher not detached (D3)
    assert sdpm.se_supp[0].weight.grad.abs().sum() > 0


def test_kd_is_fp32_and_non_negative_under_bf16_autocast():
    """The bf16 fast path: a student next to its teacher (KL about 3e-7) made the authors' KD
    negative in bf16 (the control, computed the old way); SDPM computes it in fp32."""
    g = torch.Generator().manual_seed(1)
    s = torch.randn(4, 64, 1, 1, generator=g) * 3
    q = (s + 0.01 * torch.randn(s.shape, generator=g)).bfloat16()
    s = s.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        old = kd_code(s, (q + s) / 2, 5.0, 0.9)
        got = {t: SDPM(64, teacher=t).distill(s, q) for t in ("code", "paper")}
    assert old < -1e-3
    for teacher, kd in got.items():
        exact = SDPM(64, teacher=teacher).distill(s.float(), q.float())  # no autocast
        assert kd.dtype == torch.float32 and kd >= 0 and torch.equal(kd, exact), teacher
