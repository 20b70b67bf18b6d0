"""Backbones: parameter counts, strides/shapes, freezing, BN modes and weight loading."""

import pytest
import torch
from torch import nn

from sdaanet.errors import CheckpointError
from sdaanet.models.backbones import BACKBONE_NAMES, build_backbone, load_backbone_weights

pytestmark = pytest.mark.filterwarnings("ignore:backbone .* RANDOM weights")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("name", "count", "mid", "high"),
    [
        ("resnet50", 23_508_032, 1536, 2048),
        ("resnet101", 42_500_160, 1536, 2048),
        ("vgg16_bn", 14_723_136, 768, 512),
        ("resnet50_deep", 23_631_808, 1536, 2048),
        ("resnet101_deep", 42_623_936, 1536, 2048),
        ("resnet18", 11_176_512, 384, 512),
        ("resnet34", 21_284_672, 384, 512),
        ("efficientnet_lite0", 3_371_008, 40 + 112, 1280),  # 4,652,008 with the 1000-class _fc
        ("efficientnet_lite1", 4_135_680, 40 + 112, 1280),
        ("efficientnet_lite2", 4_811_072, 48 + 120, 1280),
    ],
)
def test_parameter_counts_and_widths(name, count, mid, high):
    with torch.device("meta"):
        bb = build_backbone(name)
    assert n_params(bb) == count  # digest 1.1 (non-fc parameters)
    assert (bb.mid_channels, bb.high_channels) == (mid, high)
    assert not any(p.requires_grad for p in bb.parameters())


def test_resnet50_shape_trace_at_97():
    bb = build_backbone("resnet50").eval()
    x = bb.layer0(torch.randn(1, 3, 97, 97))
    assert x.shape == (1, 64, 25, 25)
    shapes = []
    for layer in (bb.layer1, bb.layer2, bb.layer3, bb.layer4):
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(256, 25, 25), (512, 13, 13), (1024, 13, 13), (2048, 13, 13)]
    assert bb.layer3[0].conv2.dilation == (2, 2) and bb.layer4[1].conv2.padding == (4, 4)
    assert bb.layer4[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "vgg16_bn", "resnet50_deep"])
def test_mid_and_high_shapes(name):
    bb = build_backbone(name).eval()
    l3, mid = bb.mid(torch.randn(1, 3, 97, 81))
    side = (7, 6) if name == "vgg16_bn" else (13, 11)  # 1/16 ceil-mode VGG, 1/8 ResNets
    assert mid.shape == (1, bb.mid_channels, *side)
    assert bb.high(l3).shape == (1, bb.high_channels, *side)
    assert not mid.requires_grad


def test_layer0_key_layouts_match_authors():
    with torch.device("meta"):
        tv, deep, vgg = (build_backbone(n) for n in ("resnet50", "resnet50_deep", "vgg16_bn"))
    assert tv.state_dict()["layer0.0.weight"].shape == (64, 3, 7, 7)
    assert deep.state_dict()["layer0.6.weight"].shape == (128, 64, 3, 3)
    assert "layer0.9.weight" not in deep.state_dict() and isinstance(deep.layer0[9], nn.MaxPool2d)
    assert deep.state_dict()["layer1.0.conv1.weight"].shape == (64, 128, 1, 1)
    assert [len(getattr(vgg, f"layer{i}")) for i in range(5)] == [7, 7, 10, 10, 9]
    assert all(m.ceil_mode for m in vgg.modules() if isinstance(m, nn.MaxPool2d))


def test_random_weights_warn():
    with pytest.warns(UserWarning, match="RANDOM weights") as record:
        build_backbone("resnet18")
    message = str(record[0].message)  # names the key users set (`backbone.weights=<file>`)
    assert "set backbone.weights=<file>" in message and "model.backbone" not in message
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet7")
    assert "resnet50" in BACKBONE_NAMES


def _bns(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_bn_modes_freeze_or_follow_train():
    x = torch.randn(2, 3, 65, 65)
    free = build_backbone("resnet18", freeze_bn=False).train()
    before = free.layer1[0].bn1.running_mean.clone()
    free(x)
    assert all(bn.training for bn in _bns(free))
    assert not torch.equal(before, free.layer1[0].bn1.running_mean)  # drift under no_grad (D14)
    frozen = build_backbone("resnet18", freeze_bn=True).train()
    before = frozen.layer1[0].bn1.running_mean.clone()
    frozen(x)
    assert not any(bn.training for bn in _bns(frozen))
    assert torch.equal(before, frozen.layer1[0].bn1.running_mean)


def _torchvision_resnet_state(bb) -> dict:
    """Our resnet18 state dict renamed to the torchvision key format (+ an fc to be ignored)."""
    out = {}
    for k, v in bb.state_dict().items():
        k = k.replace("layer0.0.", "conv1.").replace("layer0.1.", "bn1.")
        if not k.endswith("num_batches_tracked"):  # legacy torchvision files lack these
            out[k] = v.clone()
    out["fc.weight"] = torch.zeros(1000, 512)
    return out


def test_load_torchvision_format_with_wrappers(tmp_path):
    torch.manual_seed(0)
    src = build_backbone("resnet18")
    state = {f"module.{k}": v for k, v in _torchvision_resnet_state(src).items()}
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": state}, path)
    dst = build_backbone("resnet18", weights=path)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=True):
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(a, b), k


def test_load_shape_mismatch_raises_naming_key(tmp_path):
    state = _torchvision_resnet_state(build_backbone("resnet18"))
    state["layer2.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"layer2\.0\.conv1\.weight.*\(3, 3, 3, 3\).*\(128, 64"):
        load_backbone_weights(build_backbone("resnet18"), path)


def test_load_missing_and_unexpected_keys_warn(tmp_path):
    path = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.ones(64, 3, 7, 7), "extra.weight": torch.ones(1)}, path)
    bb = build_backbone("resnet18")
    with pytest.warns(UserWarning) as record:
        load_backbone_weights(bb, path)
    text = " ".join(str(r.message) for r in record)
    assert "missing" in text and "unexpected" in text and "extra.weight" in text
    assert torch.equal(bb.layer0[0].weight, torch.ones(64, 3, 7, 7))
    with pytest.raises(CheckpointError, match=r"backbone weights .*nope\.pth not found"):
        load_backbone_weights(bb, tmp_path / "nope.pth")


def test_vgg_and_deep_stem_key_mapping(tmp_path):
    vgg = build_backbone("vgg16_bn")
    path = tmp_path / "vgg.pth"
    w0, w24 = torch.full((64, 3, 3, 3), 0.5), torch.full((512, 256, 3, 3), 0.25)
    rv = torch.full((512,), 3.0)
    ckpt = {"features.0.weight": w0, "features.24.weight": w24, "features.41.running_var": rv}
    ckpt["classifier.0.weight"] = torch.zeros(1)
    torch.save(ckpt, path)
    with pytest.warns(UserWarning, match="missing"):
        load_backbone_weights(vgg, path)
    assert torch.equal(vgg.layer0[0].weight, w0) and torch.equal(vgg.layer3[0].weight, w24)
    assert torch.equal(vgg.layer4[7].running_var, rv)

    from sdaanet.models.backbones import _map_key

    pairs = {"conv3.weight": "layer0.6.weight", "bn2.running_mean": "layer0.4.running_mean"}
    for key, ours in pairs.items():
        assert _map_key(key, "deep") == ours
    assert _map_key("fc.bias", "deep") is None
    assert _map_key("layer3.5.conv2.weight", "torchvision") == "layer3.5.conv2.weight"
