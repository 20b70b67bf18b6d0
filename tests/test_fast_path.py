"""The fast path (conf/runtime/fast.yaml) against the plain fp32 path."""

import pytest
import torch
from omegaconf import OmegaConf
from tests.helpers.networks import build

from sdaanet.models.layers import PriorMask
from sdaanet.runtime import apply_runtime, lightning_precision, resolve_precision

S = 65
TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [1.0, 0.5]}
FAST = OmegaConf.create(
    {"fast": True, "channels_last": True, "precision": "fp32", "compile": False}
)


def episode(batch=2, shot=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, 3, S, S, generator=g)
    images = torch.randn(batch, shot, 3, S, S, generator=g)
    masks = torch.zeros(batch, shot, S, S, dtype=torch.int64)
    masks[0, :, 5:30, 10:40] = 1
    masks[1, 0, 30:60, 20:50] = 1
    masks[1, -1, 40:64, 0:20] = 1
    masks[..., 0, :] = 255
    return query, images, masks


def test_one_pass_backbone_equals_separate_passes():
    torch.manual_seed(0)
    net = build({**TINY, "shot": 2}).eval()
    args = episode()
    plain = net._backbone(*args)
    net.fast = True
    batched = net._backbone(*args)
    for a, b in zip(plain[:2], batched[:2], strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    for shots_a, shots_b in zip(plain[2:], batched[2:], strict=True):
        assert len(shots_a) == len(shots_b) == 2
        for a, b in zip(shots_a, shots_b, strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_one_pass_backbone_only_where_batch_statistics_cannot_mix():
    net = build({**TINY, "backbone": {"name": "resnet18", "freeze_bn": False}})
    net.train()
    assert not net.backbone.batch_safe  # the authors' train-mode BN: separate passes
    net.eval()
    assert net.backbone.batch_safe
    frozen = build({**TINY, "backbone": {"name": "resnet18", "freeze_bn": True}}).train()
    assert frozen.backbone.batch_safe


def test_masked_prior_equals_the_full_prior():
    g = torch.Generator().manual_seed(1)
    query = torch.randn(2, 8, 9, 9, generator=g)
    supports = [torch.randn(2, 8, 9, 9, generator=g) for _ in range(2)]
    masks = [torch.zeros(2, 1, 9, 9) for _ in range(2)]
    masks[0][0, 0, 2:5, 2:6] = 1.0
    masks[0][1, 0, 6:9, 0:3] = 0.5  # soft mask values
    # shot 2: element 0 empty, element 1 a single pixel
    masks[1][1, 0, 4, 4] = 1.0
    prior = PriorMask()
    full = prior(query, supports, masks, (17, 17))
    fast = prior(query, supports, masks, (17, 17), masked_only=True)
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=0)
    empty = [torch.zeros(2, 1, 9, 9)]
    assert prior(query, supports[:1], empty, (9, 9), masked_only=True).abs().max() == 0
    torch.testing.assert_close(
        prior(query, supports[:1], empty, (9, 9), masked_only=True),
        prior(query, supports[:1], empty, (9, 9)),
    )


def test_fast_path_gives_the_plain_argmax():
    torch.manual_seed(0)
    plain = build({**TINY, "shot": 2}).eval()
    fast = build({**TINY, "shot": 2}).eval()
    fast.load_state_dict(plain.state_dict())
    apply_runtime(fast, FAST)
    assert fast.fast and fast.decoder.cls[-1].weight.is_contiguous(
        memory_format=torch.channels_last
    )
    args = episode()
    with torch.inference_mode():
        a, b = plain(*args), fast(*args)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.995
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c = fast(*args)
    assert (c.argmax(1) == a.argmax(1)).float().mean() >= 0.99  # bf16 autocast on a tiny model


def test_eval_skips_the_auxiliary_heads():
    net = build(TINY)
    args = episode(shot=1)
    with torch.no_grad():
        _, aux, *_ = net.eval()._run(*args, None)
    assert aux == []


def test_precision_resolution():
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match=r"runtime.precision must be one of .*got 'fp16'"):
        resolve_precision("fp16", "cpu")
    bf16 = OmegaConf.create({"precision": "bf16"})
    assert lightning_precision(bf16, "cpu", "32-true") == "bf16-mixed"
    assert (
        lightning_precision(OmegaConf.create({"precision": "fp32"}), "gpu", "32-true") == "32-true"
    )
    assert lightning_precision(None, "cpu", "32-true") == "32-true"


def test_runtime_config_selects_the_path():
    from sdaanet import compose_config
    from sdaanet.build import build_module

    fast = build_module(compose_config(["debug=tiny"])).net
    plain = build_module(compose_config(["debug=tiny", "runtime=plain"])).net
    assert fast.fast and not plain.fast
    conv = fast.decoder.res2[0].weight  # a 3x3 conv: the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not plain.decoder.res2[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_mode_captures_cuda_graphs_on_cuda_only():
    from sdaanet.runtime import compile_mode

    assert compile_mode("auto", "cuda") == "reduce-overhead"
    assert compile_mode("auto", "cpu") == "default"
    assert compile_mode("max-autotune", "cpu") == "max-autotune"
    with pytest.raises(ValueError, match="runtime.compile_mode='fastest' is not one of auto"):
        compile_mode("fastest", "cuda")
