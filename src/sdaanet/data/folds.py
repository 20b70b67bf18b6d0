"""Fold class splits: PASCAL-5i, COCO-20i, MSRC-v2, the synthetic dataset and folder datasets.

Class ids are the dataset-global ids found in the label maps (1-based; 0 is background, 255 void).
A fold's *val* (novel, test) classes are never used as training targets; its *train* (base) classes
are the rest. Images holding novel classes stay in training: those pixels become background.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

from sdaanet.data.registry import DATASETS

# the datasets with a fixed class list, dealt into folds by `novel_classes`' rules
NUM_CLASSES = {n: d.num_classes for n, d in DATASETS.items() if d.num_classes is not None}
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

# MSRC-v2 (classes.tsv names): its 15 object classes with >= 24 images dealt into 3 folds of 5 in
# id order, as PASCAL-5i deals its 20, except that body joins face (they share most photos, so
# apart, dropping one's test photos from training would leave the other almost none). The 7
# "stuff" classes are never targets: their pixels are background in every episode, as VOC's
# unlabelled scenery is. Horse (3 images) is too rare to test on: a base class of every fold.
MSRC_FOLDS = (
    ("cow", "sheep", "aeroplane", "face", "body"),
    ("car", "bicycle", "flower", "sign", "bird"),
    ("book", "chair", "cat", "dog", "boat"),
)
MSRC_STUFF = ("building", "grass", "tree", "sky", "mountain", "water", "road")


def novel_classes(dataset: str, fold: int, interleaved: bool = True) -> list[int]:
    """The novel classes a fold is evaluated on (docs/paper-vs-code.md, code map: class splits).

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
    return check_fold(fold, NUM_FOLDS)


FOLD_RULES = ("contiguous", "interleaved")


def rule_folds(
    class_ids: Sequence[int],
    num_folds: int = NUM_FOLDS,
    rule: str = "contiguous",
    folds: Sequence[Sequence[int | str]] | None = None,
    names: Mapping[int, str] | None = None,
) -> list[list[int]]:
    """The novel classes of every fold of a dataset with classes ``class_ids`` (any ids).

    ``folds`` (explicit: one list of class ids or names per fold) wins over ``rule``. Otherwise the
    sorted ids are dealt into ``num_folds`` folds: ``contiguous`` gives fold i the i-th run of
    consecutive ids (the first ``n % num_folds`` folds one class more; PASCAL-5i's rule), and
    ``interleaved`` gives fold i every id at a position p with ``p % num_folds == i`` (COCO-20i's).
    """
    ids = sorted(int(c) for c in class_ids)
    if folds is not None:
        return [class_ids_of(m, ids, names, f"folds[{f}]") for f, m in enumerate(folds)]
    if rule not in FOLD_RULES:
        raise ValueError(f"fold_rule must be one of {FOLD_RULES} or explicit folds, got {rule!r}")
    if not 2 <= num_folds <= len(ids):
        raise ValueError(
            f"num_folds must be in 2..{len(ids)} for {len(ids)} classes, got {num_folds}"
        )
    if rule == "interleaved":
        return [ids[i::num_folds] for i in range(num_folds)]
    size, extra = divmod(len(ids), num_folds)
    bounds = [f * size + min(f, extra) for f in range(num_folds + 1)]
    return [ids[bounds[f] : bounds[f + 1]] for f in range(num_folds)]


def class_ids_of(
    members: Sequence[int | str],
    ids: Sequence[int],
    names: Mapping[int, str] | None = None,
    what: str = "classes",
) -> list[int]:
    """Sorted ids of ``members`` (class ids or names) among ``ids``; a one-line error naming
    ``what`` for one that is not there, or for an empty list."""
    by_name = {v: k for k, v in (names or {}).items()}
    out = []
    for m in members:
        cid = by_name.get(m, m) if isinstance(m, str) else m
        if isinstance(cid, str) and cid.isdigit():
            cid = int(cid)
        if cid not in ids:
            raise ValueError(f"{what} names {m!r}, which is not a class of the dataset")
        out.append(int(cid))
    if not out:
        raise ValueError(f"{what} is empty")
    return sorted(set(out))


def check_fold(fold: int, num_folds: int) -> int:
    """``fold`` as an int in ``0..num_folds-1``, or a one-line ``ValueError``."""
    try:
        value = operator.index(fold)
    except TypeError:
        value = -1
    if isinstance(fold, bool) or not 0 <= value < num_folds:
        raise ValueError(f"fold must be an integer in 0..{num_folds - 1}, got {fold!r}")
    return value
