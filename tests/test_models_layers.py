"""Hand-computed checks of the shared building blocks (masked GAP, prior mask, PSP, bins)."""

import math

import pytest
import torch

from sdaanet.models.layers import (
    FEMDecoder,
    PriorMask,
    PSPModule,
    masked_gap,
    pyramid_bins,
    segmentation_ce,
)


def test_masked_gap_soft_mask_by_hand():
    feat = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[-2.0, 0.0], [5.0, 5.0]]])[None]  # (1,2,2,2)
    mask = torch.tensor([[1.0, 0.5], [0.0, 0.0]])[None, None]
    out = masked_gap(feat, mask)
    assert out.shape == (1, 2, 1, 1)
    # channel 0: (1*1 + 2*0.5) / (1.5 + 5e-4); channel 1: (-2*1 + 0*0.5) / 1.5005
    expected = torch.tensor([2.0 / 1.5005, -2.0 / 1.5005])
    torch.testing.assert_close(out.flatten(), expected)


def test_masked_gap_empty_mask_is_zero_not_nan():
    out = masked_gap(torch.randn(2, 3, 4, 4), torch.zeros(2, 1, 4, 4))
    assert torch.equal(out, torch.zeros(2, 3, 1, 1))


def test_prior_mask_cosine_max_and_minmax_by_hand():
    # query layer4: 3 pixels (1,0), (0,1), (1,1); support pixels (1,0) kept, (0,5) masked out
    q = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]]])[None]  # (1,2,1,3)
    s = torch.tensor([[[1.0, 0.0]], [[0.0, 5.0]]])[None]  # (1,2,1,2)
    m = torch.tensor([[[[1.0, 0.0]]]])
    out = PriorMask()(q, [s], [m], (1, 3))
    hi = 1.0 / (1.0 + 1e-7)  # cos((1,0),(1,0)) with the 1e-7 in the denominator
    mid = 1.0 / (math.sqrt(2.0) + 1e-7)
    expected = torch.tensor([hi, 0.0, mid]) / (hi - 0.0 + 1e-7)
    torch.testing.assert_close(out.flatten(), expected)
    assert out.shape == (1, 1, 1, 3)


def test_prior_mask_per_image_range_and_shot_mean():
    torch.manual_seed(0)
    q = torch.randn(3, 8, 5, 6)
    shots = [torch.randn(3, 8, 5, 6) for _ in range(2)]
    masks = [(torch.rand(3, 1, 5, 6) > 0.3).float() for _ in range(2)]
    prior = PriorMask()
    singles = [prior(q, [s], [m], (5, 6)) for s, m in zip(shots, masks, strict=True)]
    for single in singles:  # min 0 and max 1 per image
        flat = single.flatten(1)
        torch.testing.assert_close(flat.min(1).values, torch.zeros(3))
        torch.testing.assert_close(flat.max(1).values, torch.ones(3))
    torch.testing.assert_close(prior(q, shots, masks, (5, 6)), (singles[0] + singles[1]) / 2)


def test_psp_module_shapes_and_key_layout():
    psp = PSPModule(32, 8)
    assert psp(torch.randn(2, 32, 9, 7)).shape == (2, 8, 9, 7)
    keys = set(psp.state_dict())
    assert {"stages.3.1.weight", "stages.1.2.running_mean", "bottleneck.0.weight"} <= keys
    assert "bottleneck.1.bias" in keys and "stages.0.1.bias" not in keys


def test_pyramid_bins_fractions_floor_and_absolute():
    assert pyramid_bins([60, 30, 15, 8], (41, 41)) == [(60, 60), (30, 30), (15, 15), (8, 8)]
    assert pyramid_bins([1.0, 0.5, 0.25, 0.125], (60, 60))[3] == (7, 7)  # int() floor
    assert pyramid_bins([1.0, 0.5, 0.125], (41, 9)) == [(41, 9), (20, 4), (5, 1)]


def test_fem_decoder_shapes_and_orders():
    torch.manual_seed(0)
    q, p = torch.randn(2, 8, 9, 9), torch.randn(2, 8, 1, 1)
    prior = torch.rand(2, 1, 9, 9)
    for extras, order in [([prior], False), ([prior, torch.randn(2, 1, 9, 9)], True)]:
        dec = FEMDecoder(8, [12, 6, 3, 1.0], extra_channels=len(extras), sdaanet_order=order)
        logits, aux = dec(q, p, extras)
        assert logits.shape == (2, 2, 9, 9)
        assert [a.shape[-1] for a in aux] == [12, 6, 3, 9]
        assert dec.init_merge[0][0].weight.shape[1] == 16 + len(extras)


def test_segmentation_ce_ignores_255_and_never_nan():
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[1, 255]]])
    torch.testing.assert_close(segmentation_ce(logits, target), torch.tensor(math.log(2.0)))
    assert segmentation_ce(logits, torch.full((1, 1, 2), 255)) == 0


@pytest.mark.parametrize("eps", [5e-4, 1e-2])
def test_masked_gap_eps_is_configurable(eps):
    out = masked_gap(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2), eps)
    torch.testing.assert_close(out.flatten(), torch.tensor([4.0 / (4.0 + eps)]))
