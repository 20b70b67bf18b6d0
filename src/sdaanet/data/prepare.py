"""``sdaanet-data``: check a dataset tree and write the list files the sources read.

    sdaanet-data pascal --root data/pascal   # JPEGImages/ + SegmentationClassAug/ -> lists/pascal/
    sdaanet-data coco --root data/coco       # train2014/ val2014/ annotations/{train,val}2014/

Existing list files are kept unless ``--force``. PASCAL's val list is the VOC2012 segmentation val
set (``ImageSets/Segmentation/val.txt``, shipped with VOC2012); the train list is every other image
that has both a JPEG and an SBD-augmented label (the authors' ``voc_sbd_merge_noduplicate``).
Errors are one line on stderr and exit code 2. Downloading and the SBD .mat / COCO json conversion
are not done here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sdaanet.data.sources.coco import COCO_DIRS, COCO_LISTS
from sdaanet.data.sources.pascal import PASCAL_LISTS, PASCAL_REQUIRED_DIRS

VOC_VAL_IDS = "ImageSets/Segmentation/val.txt"


class PrepareError(Exception):
    """A one-line, user-facing problem with the dataset tree."""


def _write_list(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)


def _read_ids(list_path: Path) -> list[str]:
    """Image ids (file stems) named by a list file's first column."""
    return [
        Path(line.split()[0]).stem for line in list_path.read_text().splitlines() if line.strip()
    ]


def prepare_pascal(root: Path, force: bool = False) -> list[str]:
    """Validate a PASCAL tree and write missing lists; returns the report lines."""
    if not root.is_dir():
        raise PrepareError(f"{root} does not exist: download VOC2012 and SBD there first")
    for d in PASCAL_REQUIRED_DIRS:
        if not (root / d).is_dir():
            raise PrepareError(
                f"{root / d} is missing: {root} needs JPEGImages/ (VOC2012) and "
                "SegmentationClassAug/ (SBD-augmented labels)"
            )
    labels = {p.stem for p in (root / "SegmentationClassAug").glob("*.png")}
    images = {p.stem for p in (root / "JPEGImages").glob("*.jpg")}
    ids = labels & images
    if not ids:
        raise PrepareError(f"no <id>.jpg in {root / 'JPEGImages'} has a label <id>.png")

    def line(i: str) -> str:
        return f"JPEGImages/{i}.jpg SegmentationClassAug/{i}.png"

    report = []
    train_path, val_path = root / PASCAL_LISTS["train"], root / PASCAL_LISTS["val"]
    if val_path.is_file() and not force:
        val_ids = _read_ids(val_path)
        report.append(f"kept {val_path} ({len(val_ids)} images)")
    else:
        voc_val = root / VOC_VAL_IDS
        if not voc_val.is_file():
            raise PrepareError(
                f"{voc_val} is missing: it names the VOC2012 val images (copy ImageSets/ from "
                f"VOC2012) or write {val_path} yourself"
            )
        wanted = [w for w in voc_val.read_text().split() if w]
        val_ids = [i for i in wanted if i in ids]
        if not val_ids:
            raise PrepareError(f"none of the ids in {voc_val} has both a JPEG and a label")
        _write_list(val_path, [line(i) for i in val_ids])
        report.append(f"wrote {val_path} ({len(val_ids)} of {len(wanted)} val images present)")
    if train_path.is_file() and not force:
        report.append(f"kept {train_path} ({len(_read_ids(train_path))} images)")
    else:
        held_out = set(val_ids)
        train_ids = sorted(i for i in ids if i not in held_out)
        if not train_ids:
            raise PrepareError(f"no training image left in {root} once the val images are removed")
        _write_list(train_path, [line(i) for i in train_ids])
        report.append(f"wrote {train_path} ({len(train_ids)} images)")
    return report


def prepare_coco(root: Path, force: bool = False) -> list[str]:
    """Validate a COCO tree (images + class-id PNGs) and write missing lists."""
    if not root.is_dir():
        raise PrepareError(f"{root} does not exist: download COCO 2014 there first")
    report = []
    for split, (image_dir, label_dir) in COCO_DIRS.items():
        list_path = root / COCO_LISTS[split]
        if list_path.is_file() and not force:
            report.append(f"kept {list_path}")
            continue
        for d in (image_dir, label_dir):
            if not (root / d).is_dir():
                raise PrepareError(
                    f"{root / d} is missing: {root} needs {image_dir}/ (COCO images) and "
                    f"{label_dir}/ (class-id PNG labels)"
                )
        labels = {p.stem for p in (root / label_dir).glob("*.png")}
        stems = sorted(p.stem for p in (root / image_dir).glob("*.jpg") if p.stem in labels)
        if not stems:
            raise PrepareError(f"no image in {root / image_dir} has a label in {root / label_dir}")
        _write_list(list_path, [f"{image_dir}/{s}.jpg {label_dir}/{s}.png" for s in stems])
        report.append(f"wrote {list_path} ({len(stems)} images)")
    return report


PREPARERS = {"pascal": prepare_pascal, "coco": prepare_coco}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sdaanet-data", description="Check a dataset tree and write its list files."
    )
    parser.add_argument("dataset", choices=sorted(PREPARERS))
    parser.add_argument("--root", required=True, type=Path, help="dataset root folder")
    parser.add_argument("--force", action="store_true", help="rewrite existing list files")
    args = parser.parse_args(argv)
    try:
        report = PREPARERS[args.dataset](args.root.expanduser(), force=args.force)
    except PrepareError as err:
        print(f"sdaanet-data {args.dataset}: error: {err}", file=sys.stderr)
        return 2
    for line in report:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
