"""Multi-scale inference (Table V) as one wrapper, used by evaluation and predict."""

import pytest
import torch
import torch.nn.functional as F

from sdaanet.lit import FewShotSegmentationModule
from sdaanet.models.inference import MultiScale, inference


class Doubler(torch.nn.Module):
    """Logits that record the input size: channel 1 = mean query value x side / 100."""

    def forward(self, query, images, masks):
        b, _, h, w = query.shape
        fg = query.mean(1, keepdim=True) * (h / 100)
        return torch.cat([torch.zeros_like(fg), fg], 1)


def test_multiscale_sums_the_softmax_of_every_side_at_the_input_size():
    g = torch.Generator().manual_seed(0)
    query = torch.rand(1, 3, 65, 65, generator=g)
    images, masks = torch.rand(1, 1, 3, 65, 65, generator=g), torch.ones(1, 1, 65, 65).long()
    net = Doubler()
    got = MultiScale(net, [65, 97])(query, images, masks)
    up = F.interpolate(query, (97, 97), mode="bilinear", align_corners=True)
    at97 = F.interpolate(net(up, None, None), (65, 65), mode="bilinear", align_corners=True)
    expected = net(query, None, None).softmax(1) + at97.softmax(1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert inference(net, None) is net and inference(net, []) is net
    with pytest.raises(ValueError, match="at least one side"):
        MultiScale(net, [])


def test_the_lightning_module_predicts_through_the_same_wrapper():
    query = torch.rand(2, 3, 65, 65)
    batch = {"query_image": query, "support_images": torch.rand(2, 1, 3, 65, 65),
             "support_masks": torch.ones(2, 1, 65, 65).long()}  # fmt: skip
    module = FewShotSegmentationModule(Doubler(), n_test_classes=2, multiscale=[65, 97])
    expected = MultiScale(module.net, [65, 97])(*batch.values())
    torch.testing.assert_close(module.predict(batch), expected, rtol=0, atol=0)
    assert not any(k.startswith("infer") for k in module.state_dict())  # the net is stored once


def test_multiscale_resizes_n_way_supports_class_by_class():
    seen = []

    def net(query, images, masks):  # (B, N, K, 3, h, w) supports: foreground = class 1's mask
        seen.append((tuple(images.shape), tuple(masks.shape)))
        fg = masks[:, 0, 0].float()
        return torch.stack([1 - fg, fg, torch.zeros_like(fg)], 1)

    masks = torch.zeros(1, 2, 1, 8, 8, dtype=torch.int64)
    masks[0, 0, 0, :, :4] = 1
    scores = MultiScale(net, [8, 4])(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 1, 3, 8, 8), masks)
    assert seen == [((1, 2, 1, 3, 8, 8), (1, 2, 1, 8, 8)), ((1, 2, 1, 3, 4, 4), (1, 2, 1, 4, 4))]
    assert scores.argmax(1)[0, :, :4].eq(1).all() and scores.argmax(1)[0, :, 4:].eq(0).all()
