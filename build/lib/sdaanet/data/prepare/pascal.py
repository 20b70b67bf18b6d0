"""PASCAL-5i lists and labels from VOC2012 + SBD: ``sdaanet-data pascal``.

``sdaanet-data pascal --root R [--sbd SBD] [--train-list F] [--val-list F] [--force]``

``R`` is the VOC2012 folder: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette
PNGs) and ``ImageSets/Segmentation/{train,val}.txt``; it may already hold
``SegmentationClassAug/<id>.png``. ``SBD`` is SBD's ``benchmark_RELEASE/dataset``:
``cls/<id>.mat`` (struct ``GTcls``, field ``Segmentation``: uint8 class ids), ``train.txt`` and,
ideally, the official ``train_noval.txt`` (5,623 ids). ``R`` needs ``SegmentationClassAug/`` or
``--sbd``.

Rules:

- Lists: lines ``JPEGImages/<id>.jpg SegmentationClassAug/<id>.png``, relative to ``R``.
- Val list ``lists/pascal/val.txt``: the VOC2012 val ids in file order (1,449 lines).
- Train list ``lists/pascal/voc_sbd_merge_noduplicate.txt``: the SBD ``train_noval`` ids in file
  order, then the VOC2012 train ids, keeping the first occurrence of each (the authors'
  merge + ``duplicate_removel.py``: 5,953 lines on the real data).
- Without ``train_noval.txt``, SBD ``train.txt`` minus the val list's ids stands in for it (a
  warning says so). Without ``--sbd`` the train list is VOC2012 train only (a warning says so).
- ``--train-list`` / ``--val-list`` copy the given standard list files instead.
- The train list must not hold a val image.
- Every file a list names must exist (the JPEGs are checked before any label is built).
- A missing ``SegmentationClassAug/<id>.png`` that a list names is built from
  ``SegmentationClass/<id>.png`` (palette indices) when VOC has it, else from SBD
  ``cls/<id>.mat``. Built labels must hold only 0-20 and 255.
- Existing lists and label PNGs are kept unless ``--force``, which rewrites the lists and
  rebuilds every label that has a source.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from sdaanet.data.prepare.common import (
    ListPlan,
    Pair,
    Report,
    check_exists,
    expand,
    first,
    plan_list,
    read_ids,
    write_png,
)
from sdaanet.data.sources.pascal import PASCAL_LISTS
from sdaanet.errors import DataError, DataNotFoundError, PrepareError, one_line
from sdaanet.io import open_image

LABEL_DIR = "SegmentationClassAug"
VOC_LABEL_DIR = "SegmentationClass"
VOC_IDS = {"train": "ImageSets/Segmentation/train.txt", "val": "ImageSets/Segmentation/val.txt"}
VALID_IDS = frozenset(range(21)) | {255}
SBD_HELP = "SBD's benchmark_RELEASE/dataset (cls/<id>.mat, train.txt, train_noval.txt)"


def layout(root: Path) -> str:
    return (
        f"{root} needs JPEGImages/ and ImageSets/Segmentation/ (VOC2012) and either "
        f"{LABEL_DIR}/ or --sbd benchmark_RELEASE/dataset"
    )


def pair(image_id: str) -> Pair:
    return f"JPEGImages/{image_id}.jpg", f"{LABEL_DIR}/{image_id}.png"


def stem(path: str) -> str:
    return Path(path).stem


# -- labels ------------------------------------------------------------------------------------
def check_label(label: np.ndarray, path: Path) -> np.ndarray:
    """``label`` as uint8 if it is a 2-D map of ids 0-20 and 255; else an error naming ``path``."""
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise PrepareError(f"{path} is not a class-id map (shape {label.shape}, {label.dtype})")
    bad = sorted(set(np.unique(label).tolist()) - VALID_IDS)
    if bad:
        raise PrepareError(f"{path} holds label values {bad} outside 0-20 and 255")
    return label.astype(np.uint8)


def read_voc_label(path: Path) -> np.ndarray:
    """A VOC ``SegmentationClass`` palette PNG as its palette indices."""
    try:
        label = np.array(open_image(path, f"label {path}"))
    except (DataError, DataNotFoundError) as err:
        raise PrepareError(str(err)) from None
    return check_label(label, path)


def read_sbd_label(path: Path) -> np.ndarray:
    """An SBD ``cls/<id>.mat`` file's ``GTcls.Segmentation``."""
    from scipy.io import loadmat

    try:
        label = loadmat(path, struct_as_record=False, squeeze_me=True)["GTcls"].Segmentation
    except Exception as err:  # scipy raises many types on corrupt files
        raise PrepareError(f"cannot read GTcls.Segmentation from {path}: {one_line(err)}") from None
    return check_label(np.asarray(label), path)


def label_source(root: Path, sbd: Path | None, image_id: str) -> Path | None:
    """Where the label of ``image_id`` can be built from: VOC first, then SBD."""
    candidates = [root / VOC_LABEL_DIR / f"{image_id}.png"]
    if sbd is not None:
        candidates.append(sbd / "cls" / f"{image_id}.mat")
    return next((p for p in candidates if p.is_file()), None)


def build_labels(
    root: Path, sbd: Path | None, labels: list[str], force: bool, report: Report
) -> None:
    """Build the missing (all with ``force``) ``SegmentationClassAug`` PNGs among ``labels``."""
    ids = [stem(p) for p in dict.fromkeys(labels) if Path(p).parent == Path(LABEL_DIR)]
    counts: Counter[str] = Counter()
    todo: list[tuple[Path, Path]] = []
    missing = []
    for image_id in ids:
        dst = root / LABEL_DIR / f"{image_id}.png"
        src = label_source(root, sbd, image_id) if force or not dst.is_file() else None
        if src is not None:
            todo.append((src, dst))
        elif dst.is_file():
            counts["kept"] += 1
        else:
            missing.append(image_id)
    if missing:
        where = f"{VOC_LABEL_DIR}/<id>.png" + (" or SBD cls/<id>.mat" if sbd else "; pass --sbd")
        raise PrepareError(
            f"{len(missing)} labels are missing from {root / LABEL_DIR} and cannot be built "
            f"(no {where}): {first(missing)}"
        )
    if todo:
        report.info(f"building {len(todo)} labels in {root / LABEL_DIR}")
    for src, dst in todo:
        from_voc = src.suffix == ".png"
        write_png(dst, read_voc_label(src) if from_voc else read_sbd_label(src))
        counts["voc" if from_voc else "sbd"] += 1
    report.info(
        f"labels in {root / LABEL_DIR}: {counts['kept']} kept, {counts['voc']} built from "
        f"VOC {VOC_LABEL_DIR}, {counts['sbd']} built from SBD cls"
    )


# -- lists -------------------------------------------------------------------------------------
def voc_ids(root: Path, split: str) -> list[str]:
    path = root / VOC_IDS[split]
    if not path.is_file():
        raise PrepareError(f"{path} is missing; {layout(root)} (or pass --{split}-list)")
    return read_ids(path)


def sbd_train_ids(sbd: Path, val_ids: set[str], report: Report) -> list[str]:
    """SBD ``train_noval.txt``, or ``train.txt`` minus the val ids (with a warning)."""
    noval, train = sbd / "train_noval.txt", sbd / "train.txt"
    if noval.is_file():
        return read_ids(noval)
    if not train.is_file():
        raise PrepareError(f"{sbd} has neither train_noval.txt nor train.txt; --sbd is {SBD_HELP}")
    ids = [i for i in read_ids(train) if i not in val_ids]
    report.warn(
        f"{noval} is missing: used SBD train.txt minus the val ids ({len(ids)} ids); supply the "
        "official train_noval.txt (5,623 ids) to reproduce the authors' train list exactly"
    )
    return ids


def train_ids(root: Path, sbd: Path | None, val_ids: set[str], report: Report) -> list[str]:
    """SBD train_noval then VOC train, first occurrence kept."""
    voc = voc_ids(root, "train")
    if sbd is None:
        report.warn(
            f"no --sbd: the train list is VOC2012 train only ({len(voc)} images); pass --sbd "
            "benchmark_RELEASE/dataset (or --train-list) for the authors' 5,953-image list"
        )
        return voc
    return list(dict.fromkeys(sbd_train_ids(sbd, val_ids, report) + voc))


def check_disjoint(train: ListPlan, val: ListPlan) -> None:
    val_ids = {stem(p) for p in val.images()}
    shared = [stem(p) for p in train.images() if stem(p) in val_ids]
    if shared:
        raise PrepareError(
            f"{len(shared)} val images are in the train list ({train.origin}): {first(shared)}"
        )


# -- command -----------------------------------------------------------------------------------
def check_layout(root: Path, sbd: Path | None) -> None:
    if not root.is_dir():
        raise PrepareError(f"{root} does not exist; {layout(root)}")
    if not (root / "JPEGImages").is_dir():
        raise PrepareError(f"{root / 'JPEGImages'} is missing; {layout(root)}")
    if sbd is None and not (root / LABEL_DIR).is_dir():
        raise PrepareError(f"{root / LABEL_DIR} is missing and no --sbd is given; {layout(root)}")
    if sbd is not None and not sbd.is_dir():
        raise PrepareError(f"--sbd {sbd} is not a folder; it must be {SBD_HELP}")


def prepare_pascal(
    root: Path,
    *,
    sbd: Path | None = None,
    train_list: Path | None = None,
    val_list: Path | None = None,
    force: bool = False,
    report: Report | None = None,
) -> list[str]:
    """Check a VOC2012 (+ SBD) tree, build missing labels, write the lists; the report lines."""
    report = report or Report()
    check_layout(root, sbd)
    val = plan_list(
        root / PASCAL_LISTS["val"],
        val_list,
        force,
        lambda: [pair(i) for i in voc_ids(root, "val")],
        str(root / VOC_IDS["val"]),
    )
    val_ids = {stem(p) for p in val.images()}
    train = plan_list(
        root / PASCAL_LISTS["train"],
        train_list,
        force,
        lambda: [pair(i) for i in train_ids(root, sbd, val_ids, report)],
        str(root / VOC_IDS["train"]) + (f" and the lists in {sbd}" if sbd else ""),
    )
    check_disjoint(train, val)
    for plan in (train, val):
        check_exists(root, plan.images(), plan.origin)
    build_labels(root, sbd, [label for _, label in train.pairs + val.pairs], force, report)
    for plan in (train, val):
        check_exists(root, plan.files(), plan.origin)
        plan.commit(report)
    return report.lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sbd", type=Path, help=SBD_HELP)
    parser.add_argument("--train-list", type=Path, help="copy this voc_sbd_merge_noduplicate.txt")
    parser.add_argument("--val-list", type=Path, help="copy this val.txt")


def run(args: argparse.Namespace, report: Report) -> None:
    prepare_pascal(
        args.root,
        sbd=expand(args.sbd),
        train_list=expand(args.train_list),
        val_list=expand(args.val_list),
        force=args.force,
        report=report,
    )
