"""A tiny MSRC-shaped tree (images/, labels/, classes.tsv), shared by the MSRC tests."""

from pathlib import Path

import cv2
import numpy as np

from sdaanet.data.folds import MSRC_FOLDS

MSRC_CLASSES = (
    "building grass tree cow horse sheep sky mountain aeroplane water face car bicycle flower "
    "sign bird book chair road cat dog body boat"
).split()


def write_msrc_tree(root: Path, photos: dict[str, tuple[str, ...]], side: int = 48) -> Path:
    """An MSRC-shaped tree: each photo's label holds its classes in equal vertical bands."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    ids = {name: i for i, name in enumerate(MSRC_CLASSES, 1)}
    rng = np.random.default_rng(0)
    for stem, classes in photos.items():
        label = np.full((side, side), 255, np.uint8)
        band = side // len(classes)
        for k, name in enumerate(classes):
            label[2:, k * band : (k + 1) * band] = ids[name]
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), image)
        cv2.imwrite(str(root / "labels" / f"{stem}.png"), label)
    lines = ["id\tname", *(f"{i}\t{n}" for i, n in enumerate(MSRC_CLASSES, 1))]
    (root / "classes.tsv").write_text("\n".join(lines) + "\n")
    return root


def tiny_msrc(root: Path) -> Path:
    """Two photos of every object class over grass or sky, plus two cow+dog photos."""
    objects = [c for fold in MSRC_FOLDS for c in fold] + ["horse"]
    photos = {f"{c}_{k}": (c, "grass" if k else "sky") for c in objects for k in range(2)}
    photos |= {"cowdog_0": ("cow", "dog"), "cowdog_1": ("dog", "cow")}
    return write_msrc_tree(root, photos)
