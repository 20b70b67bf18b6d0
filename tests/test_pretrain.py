"""Backbone pre-training on base classes (the demo's stand-in for ImageNet weights)."""

import logging
import re

import numpy as np
import pytest
import torch

from sdaanet import compose_config, pretrain
from sdaanet.build import build_datamodule
from sdaanet.data.folds import fold_classes
from sdaanet.models.backbones import build_backbone
from sdaanet.pretrain import BaseClassPixels, pretrain_backbone


def _data():
    return build_datamodule(compose_config(["debug=tiny"]))


def test_novel_class_pixels_become_background():
    base = fold_classes("synthetic", 0, "train")
    source = _data().make_source("train")
    pixels = BaseClassPixels(source, base, size=65, seed=0)
    assert pixels.lut[0] == 0 and pixels.lut[255] == 255
    assert [int(pixels.lut[c]) for c in base] == list(range(1, len(base) + 1))
    assert all(pixels.lut[c] == 0 for c in range(1, 6))  # fold 0's novel classes
    _, label = pixels[0]
    assert set(np.unique(label.numpy())) <= set(range(len(base) + 1)) | {255}


@pytest.mark.filterwarnings("ignore:backbone .* has RANDOM weights")
def test_pretrained_weights_are_written_and_load_into_the_dilated_backbone(
    tmp_path, monkeypatch, caplog
):
    initial: dict[str, torch.Tensor] = {}

    def recording(*args, **kwargs):  # the network pretrain_backbone starts from, before training
        net = build_backbone(*args, **kwargs)
        initial.update({k: v.detach().clone() for k, v in net.state_dict().items()})
        return net

    monkeypatch.setattr(pretrain, "build_backbone", recording)
    caplog.set_level(logging.INFO, logger="sdaanet.pretrain")
    out = pretrain_backbone(
        "resnet18", _data(), tmp_path / "w.pth", steps=3, batch_size=2, size=65, every_n_steps=2
    )
    assert out.is_file() and not list(tmp_path.glob("*.tmp"))
    # a progress line every 2 steps and at the last (`make demo` piped shows its progress)
    lines = [r.getMessage() for r in caplog.records if "step" in r.getMessage()]
    assert [re.match(r"pretrain resnet18 step (\d/\d)  loss \d+\.\d{3}  \d+\.\d\d s/step$", x)[1]
            for x in lines] == ["2/3", "3/3"], lines  # fmt: skip
    saved = torch.load(out, weights_only=True)
    loaded = build_backbone("resnet18", weights=out)  # output stride 8, same tensors
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # the start is the seeded random init (seed=0), and training moved every tensor of it
    torch.manual_seed(0)
    seeded = build_backbone("resnet18", output_stride=32).state_dict()
    assert initial.keys() == saved.keys() == seeded.keys()
    assert all(torch.equal(initial[k], seeded[k]) for k in initial)
    unchanged = [k for k in saved if torch.equal(initial[k], saved[k])]
    assert not unchanged, unchanged
