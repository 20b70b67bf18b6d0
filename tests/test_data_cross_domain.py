"""PATNet's cross-domain test sets (Deepglobe, ISIC, Chest X-ray, FSS-1000) on tiny trees written
in exactly PATNet's layouts: listing rules, labels, episode draws, the check, sdaanet-eval."""

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from sdaanet import compose_config
from sdaanet.data import prepare
from sdaanet.data.modules import (
    ChestXrayDataModule,
    DeepglobeDataModule,
    FSS1000PatnetDataModule,
    ISICDataModule,
)
from sdaanet.data.sources.crossdomain import kept, listing
from sdaanet.errors import DataConfigError, DataNotFoundError
from sdaanet.eval import run as run_eval
from sdaanet.report import main as report_main

SIZE = 24
FSS_CLASSES = ["bee", "cup"]
DATASETS = {
    "deepglobe": (DeepglobeDataModule, 6),
    "isic": (ISICDataModule, 3),
    "chest_xray": (ChestXrayDataModule, 1),
    "fss1000_patnet": (FSS1000PatnetDataModule, 2),
}


def write_pair(image: Path, mask: Path, k: int, grey: bool = False) -> None:
    """A random image and a mask with a k-dependent 0/255 foreground block."""
    rng = np.random.default_rng(k)
    shape = (SIZE, SIZE) if grey else (SIZE, SIZE, 3)
    image.parent.mkdir(parents=True, exist_ok=True)
    mask.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(image), rng.integers(0, 256, size=shape, dtype=np.uint8))
    m = np.zeros((SIZE, SIZE), dtype=np.uint8)
    m[2 : 10 + k % 8, 3:15] = 255
    cv2.imwrite(str(mask), m)


def write_tree(root: Path) -> Path:
    """All four datasets under one PATNet --datapath, 3 images per class (10 + 1 for FSS)."""
    k = 0
    for c in range(1, 7):
        for i in range(3):
            k += 1
            write_pair(root / f"Deepglobe/{c}/test/origin/{i}_{c}.jpg",
                       root / f"Deepglobe/{c}/test/groundtruth/{i}_{c}.png", k)  # fmt: skip
    for c in range(1, 4):
        for i in range(3):
            k += 1
            name = f"ISIC_{c}{i:03d}"
            write_pair(root / f"ISIC/ISIC2018_Task1-2_Training_Input/{c}/{name}.jpg",
                       root / f"ISIC/ISIC2018_Task1_Training_GroundTruth/{name}_segmentation.png",
                       k)  # fmt: skip
    for i in range(4):
        k += 1
        write_pair(root / f"LungSegmentation/CXR_png/CHNCXR_{i:04d}_0.png",
                   root / f"LungSegmentation/masks/CHNCXR_{i:04d}_0_mask.png", k, grey=True)  # fmt: skip
    for cname in FSS_CLASSES:
        for n in range(1, 11):
            k += 1
            write_pair(root / f"FSS-1000/{cname}/{n}.jpg", root / f"FSS-1000/{cname}/{n}.png", k)
    write_pair(root / "FSS-1000/bee/extra.jpg", root / "FSS-1000/bee/extra.png", 99)
    (root / "FSS-1000/splits").mkdir()
    (root / "FSS-1000/splits/test.txt").write_text("cup\nbee\n")
    # PATNet's name rule drops these (name.split('.')[1] is not 'jpg'), masks or not
    write_pair(root / "Deepglobe/1/test/origin/a.b.jpg", root / "Deepglobe/1/test/groundtruth/a.png", 0)
    write_pair(root / "FSS-1000/cup/img.v2.jpg", root / "FSS-1000/cup/img.png", 0)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("cd") / "datapath")
