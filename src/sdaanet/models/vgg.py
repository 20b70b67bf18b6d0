"""The VGG-16-bn stages of the frozen backbones (``models/backbones.py``; code map: backbone):
``features`` split as [0:7) [7:14) [14:24) [24:34) [34:43), ceil-mode maxpools, the last maxpool
(``features[43]``) dropped; ``Backbone.mid`` resizes layer2 to the layer3 size."""

from __future__ import annotations

from torch import nn

# features index ranges of the VGG-16-bn stages
SPLIT = ((0, 7), (7, 14), (14, 24), (24, 34), (34, 43))
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg16_bn_layers() -> tuple[list[nn.Module], int, int]:
    """``layer0..layer4`` of VGG-16-bn, the width of cat(layer3, layer2) and of layer4."""
    features: list[nn.Module] = []
    cin = 3
    for v in _CFG:
        if v == "M":
            features.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            conv = nn.Conv2d(cin, int(v), 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            features += [conv, nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
            cin = int(v)
    return [nn.Sequential(*features[a:b]) for a, b in SPLIT], 256 + 512, 512
