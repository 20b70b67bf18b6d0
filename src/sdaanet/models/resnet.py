"""The ResNet stages of the frozen backbones (``models/backbones.py``; code map: backbone).

* ``resnet50`` / ``resnet101``: torchvision layout (7x7 stem, stride on the 3x3 ``conv2``, v1.5),
  the SD-AANet backbone. ``layer0`` = [conv1, bn1, relu, maxpool] -> keys ``layer0.0/1``.
* ``resnet50_deep`` / ``resnet101_deep``: PSPNet "v2" layout with the deep 3-conv stem (PFENet).
  ``layer0`` = [conv, bn, relu] x 3 + maxpool -> keys ``layer0.0/1, 3/4, 6/7``.
* ``resnet18`` / ``resnet34``: small basic-block ResNets (torchvision layout) for CPU demos.

At output stride 8 (the paper's) layer3 uses dilation 2 and layer4 dilation 4, both stride 1.
"""

from __future__ import annotations

from torch import Tensor, nn

NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet50_deep", "resnet101_deep")

# a checkpoint's stem keys -> their index in our ``layer0`` (torchvision and deep-stem layouts)
STEM_KEYS = {
    "torchvision": {"conv1": "0", "bn1": "1"},
    "deep": {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4", "conv3": "6", "bn3": "7"},
}


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


_SPECS: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


def _stem(deep: bool) -> tuple[list[nn.Module], int]:
    """The stem before ``layer0``'s maxpool and its width: 7x7 conv, or PSPNet v2's 3x3 convs
    64, 64, 128."""
    if not deep:
        stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        return stem, 64
    stem = [nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    stem += [_conv3x3(64, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    stem += [_conv3x3(64, 128), nn.BatchNorm2d(128), nn.ReLU(inplace=True)]
    return stem, 128


def resnet_layers(name: str, output_stride: int = 8) -> tuple[list[nn.Module], str, int, int]:
    """``layer0..layer4`` of ResNet `name`, its key layout (``STEM_KEYS``), the width of
    cat(layer3, layer2) and of layer4."""
    deep = name.endswith("_deep")
    block, counts = _SPECS[name.removesuffix("_deep")]
    stem, cin = _stem(deep)
    layer0 = nn.Sequential(*stem, nn.MaxPool2d(3, 2, 1))
    layer1, c1 = _stage(block, cin, 64, counts[0], 1, 1)
    layer2, c2 = _stage(block, c1, 128, counts[1], 2, 1)
    dilated = output_stride == 8
    layer3, c3 = _stage(block, c2, 256, counts[2], 1 if dilated else 2, 2 if dilated else 1)
    layer4, c4 = _stage(block, c3, 512, counts[3], 1 if dilated else 2, 4 if dilated else 1)
    layers = [layer0, layer1, layer2, layer3, layer4]
    for m in layers:
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return layers, "deep" if deep else "torchvision", c2 + c3, c4
