"""Fold class splits: PASCAL-5i, COCO-20i and the built-in synthetic dataset.

Class ids are the dataset-global ids found in the label maps (1-based; 0 is background, 255 void).
A fold's *val* (novel, test) classes are never used as training targets; its *train* (base) classes
are the rest. Images holding novel classes stay in training: those pixels become background.
"""

from __future__ import annotations

import operator

NUM_CLASSES = {"pascal": 20, "coco": 80, "synthetic": 20}
NUM_FOLDS = 4

VOC_CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def novel_classes(dataset: str, fold: int, interleaved: bool = True) -> list[int]:
    """The novel classes a fold is evaluated on (digest §4.1).

    PASCAL-5i / synthetic: fold i -> 5i+1..5i+5. COCO-20i: ``interleaved`` (the authors'
    ``use_split_coco: True``) -> range(1+i, 81, 4); otherwise 20i+1..20i+20.
    """
    n = _num_classes(dataset)
    fold = _check_fold(fold)
    if dataset == "coco" and interleaved:
        return list(range(1 + fold, n + 1, NUM_FOLDS))
    per_fold = n // NUM_FOLDS
    return list(range(per_fold * fold + 1, per_fold * (fold + 1) + 1))


def fold_classes(dataset: str, fold: int, split: str, interleaved: bool = True) -> list[int]:
    """Sorted class ids used by ``split`` ("train": base classes, "val"/"test": novel classes)."""
    novel = novel_classes(dataset, fold, interleaved)
    if split in ("val", "test"):
        return novel
    if split == "train":
        held_out = set(novel)
        return [c for c in range(1, _num_classes(dataset) + 1) if c not in held_out]
    raise ValueError(f"split must be 'train' or 'val', got {split!r}")


def class_names(dataset: str) -> tuple[str, ...]:
    """Human-readable names, index c-1 for class id c."""
    if dataset == "pascal":
        return VOC_CLASS_NAMES
    if dataset == "coco":
        return COCO_CLASS_NAMES
    if dataset == "synthetic":
        from sdaanet.data.sources.synthetic import SYNTHETIC_CLASS_NAMES

        return SYNTHETIC_CLASS_NAMES
    _num_classes(dataset)  # raises
    raise AssertionError


def _num_classes(dataset: str) -> int:
    try:
        return NUM_CLASSES[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; expected one of {sorted(NUM_CLASSES)}"
        ) from None


def _check_fold(fold: int) -> int:
    try:
        value = operator.index(fold)
    except TypeError:
        value = -1
    if isinstance(fold, bool) or not 0 <= value < NUM_FOLDS:
        raise ValueError(f"fold must be an integer in 0..{NUM_FOLDS - 1}, got {fold!r}")
    return value
