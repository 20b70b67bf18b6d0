"""Backbone pre-training on a dataset's base classes: the stand-in for ImageNet weights where none
can be downloaded (the synthetic demo).

The backbone learns per-pixel classification of the fold's training classes (pixels of the novel
classes count as background, as in episodic training), with 1x1 heads on layer3 and layer4 that
are thrown away afterwards. The weights are saved in the `layerN.*` form that
`models.load_backbone_weights` reads, so SD-AANet then uses them frozen, as it uses ImageNet's.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.data.transforms import build_transform
from sdaanet.io import atomic_write
from sdaanet.models.backbones import build_backbone

log = logging.getLogger(__name__)


class BaseClassPixels(Dataset):
    """(image, label) pairs whose labels hold 1..n for the base classes, 0 elsewhere, 255 void."""

    def __init__(self, source: Any, base_classes: list[int], size: int, seed: int) -> None:
        self.source = source
        self.transform = build_transform("train", size)
        self.lut = np.zeros(256, dtype=np.uint8)
        self.lut[255] = 255
        for i, c in enumerate(base_classes, start=1):
            self.lut[c] = i
        self.seed = seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.source.load(i)
        image, label = self.transform(image, self.lut[label], seed=self.seed * 1_000_003 + i)
        return torch.from_numpy(image), torch.from_numpy(label)


def pretrain_backbone(
    backbone: str,
    datamodule: EpisodicDataModule,
    out: str | os.PathLike,
    steps: int = 150,
    batch_size: int = 16,
    lr: float = 2e-3,
    size: int = 97,
    output_stride: int = 32,
    seed: int = 0,
    every_n_steps: int = 25,
) -> Path:
    """Train `backbone` on the base classes of `datamodule`'s fold and save it to `out`, logging
    a progress line every `every_n_steps` steps and at the last.

    `output_stride=32` trains the plain (undilated) ResNet, as ImageNet weights are trained,
    at a fraction of the cost; the weights are the same tensors that SD-AANet then dilates.
    """
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random init is the point here
        net = build_backbone(backbone, output_stride=output_stride)
    net.requires_grad_(True).train()
    base = datamodule.split_classes("train")
    dataset = BaseClassPixels(datamodule.make_source("train"), base, size, seed)
    heads = _heads(net, size, len(base) + 1)
    params = [*net.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    log.info(  # bit-identical weights need the same thread count and CPU capability
        "pretrain on %d torch threads, CPU capability %s",
        torch.get_num_threads(),
        torch.backends.cpu.get_cpu_capability(),
    )
    start = time.time()
    for step, (images, labels) in enumerate(_loader(dataset, steps, batch_size, seed)):
        loss = _loss(net, heads, images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % every_n_steps == 0 or step == steps - 1:
            log.info(
                "pretrain %s step %d/%d  loss %.3f  %.2f s/step",
                backbone,
                step + 1,
                steps,
                loss.item(),
                (time.time() - start) / (step + 1),
            )
    state = net.state_dict()
    return atomic_write(out, lambda f: torch.save(state, f))


def _heads(net: nn.Module, size: int, n_classes: int) -> nn.ModuleList:
    """The 1x1 classifiers on layer3 and layer4 (thrown away after pre-training); layer3's
    width is measured by a forward pass of zeros."""
    with torch.no_grad():
        width3 = net.mid(torch.zeros(2, 3, size, size))[0].shape[1]
    return nn.ModuleList(
        [nn.Conv2d(width3, n_classes, 1), nn.Conv2d(net.high_channels, n_classes, 1)]
    )


def _loader(dataset: Dataset, steps: int, batch_size: int, seed: int) -> DataLoader:
    """``steps`` batches of images drawn with replacement, in an order fixed by ``seed``."""
    sampler = torch.utils.data.RandomSampler(
        dataset, num_samples=steps * batch_size, generator=torch.Generator().manual_seed(seed)
    )
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=1)


def _loss(
    net: nn.Module, heads: nn.ModuleList, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Per-pixel cross-entropy of both heads (weights 0.4 layer3, 1.0 layer4), void ignored."""
    f3 = net.layer3(net.layer2(net.layer1(net.layer0(images))))
    f4 = net.layer4(f3)
    return sum(
        w
        * F.cross_entropy(
            F.interpolate(h(f), size=labels.shape[-2:], mode="bilinear", align_corners=True),
            labels,
            ignore_index=255,
        )
        for w, h, f in ((0.4, heads[0], f3), (1.0, heads[1], f4))
    )
