"""COCO-20i label PNGs and lists from COCO 2014: ``sdaanet-data coco``.

``sdaanet-data coco --root R [--workers N] [--force]``

``R`` holds ``train2014/`` and ``val2014/`` (JPEGs) and ``annotations/instances_train2014.json``
and ``annotations/instances_val2014.json``.

Rules:

- Class ids: the JSON's categories sorted by COCO category id become 1..N (N = 80 on COCO, whose
  ids run 1..90 with gaps, so 90 -> 80), the order of ``COCO_CLASS_NAMES``. 0 is background,
  255 is ignore. Train and val must list the same categories. Categories other than COCO's 80
  (by sorted names) get a warning.
- Label ``annotations/<split>2014/<stem>.png`` (mode L): non-crowd instance masks painted in
  descending mask area (pixel count; ties in annotation order), so smaller objects stay on top;
  crowd regions painted 255 last. Masks come from the polygons / RLEs via ``pycocotools``.
- Only images with at least one non-crowd annotation get a label and a list line.
- Lists ``lists/coco/{train,val}_data_list.txt``: lines
  ``train2014/<file> annotations/train2014/<stem>.png``, sorted by file name.
- Every JPEG the JSON names for a listed image must exist.
- Label PNGs are a cache: existing ones are skipped unless ``--force``; existing lists are kept
  unless ``--force``. ``--workers N`` paints with N processes.
- Without a JSON, the PNGs already in ``annotations/<split>2014/`` are listed instead (one line
  per PNG, sorted).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sdaanet.data.folds import COCO_CLASS_NAMES
from sdaanet.data.prepare.common import (
    Pair,
    Report,
    check_exists,
    plan_list,
    write_png,
)
from sdaanet.data.sources.coco import COCO_DIRS, COCO_LISTS
from sdaanet.errors import PrepareError, one_line

IGNORE = 255

# (annotation id, segmentation, value): value 1..N for an object, IGNORE for a crowd region
Object = tuple[int, Any, int]
# (label path, height, width, objects, json path for errors)
Task = tuple[str, int, int, list[Object], str]


def annotations_path(root: Path, image_dir: str) -> Path:
    return root / "annotations" / f"instances_{image_dir}.json"


def layout(root: Path) -> str:
    images = " and ".join(f"{i}/" for i, _ in COCO_DIRS.values())
    jsons = ", ".join(f"annotations/instances_{i}.json" for i, _ in COCO_DIRS.values())
    labels = ", ".join(f"{d}/" for _, d in COCO_DIRS.values())
    return f"{root} needs {images} (COCO 2014 images) and {jsons} (or class-id PNGs in {labels})"


def require_pycocotools() -> None:
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        raise PrepareError(
            "pycocotools is needed to turn the COCO json into label PNGs: pip install pycocotools"
        ) from None


# -- painting (runs in worker processes) -------------------------------------------------------
def decode(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A polygon list, uncompressed or compressed RLE as a (H,W) uint8 mask."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


def paint(height: int, width: int, objects: list[Object], where: str) -> np.ndarray:
    """The class-id label: objects by descending area, then crowd regions as 255."""
    masks = []
    for ann_id, segmentation, value in objects:
        try:
            mask = decode(segmentation, height, width).astype(bool)
        except Exception as err:  # pycocotools raises bare Exception on bad input
            raise PrepareError(f"{where}: annotation {ann_id}: {one_line(err)}") from None
        masks.append((mask, value))
    things = sorted((m for m in masks if m[1] != IGNORE), key=lambda m: -int(m[0].sum()))
    crowds = [m for m in masks if m[1] == IGNORE]
    label = np.zeros((height, width), np.uint8)
    for mask, value in things + crowds:
        label[mask] = value
    return label


def convert(task: Task) -> None:
    path, height, width, objects, where = task
    write_png(Path(path), paint(height, width, objects, where))


# -- annotations -------------------------------------------------------------------------------
def load_annotations(
    path: Path,
) -> tuple[list[tuple[int, str]], list[tuple[str, int, int, list[Object]]]]:
    """The (id, name) categories sorted by id and, for every image with a non-crowd object, its
    (file name, height, width, objects), sorted by file name."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise PrepareError(f"cannot read {path}: {one_line(err)}") from None
    try:
        categories = sorted((c["id"], c["name"]) for c in data["categories"])
        class_id = {c: k for k, (c, _) in enumerate(categories, 1)}
        objects: dict[int, list[Object]] = defaultdict(list)
        for ann in data["annotations"]:
            if ann["category_id"] not in class_id:
                raise PrepareError(
                    f"{path}: annotation {ann['id']} has category_id {ann['category_id']}, "
                    "which is not among its categories"
                )
            crowd = bool(ann.get("iscrowd", 0))
            objects[ann["image_id"]].append(
                (ann["id"], ann["segmentation"], IGNORE if crowd else class_id[ann["category_id"]])
            )
        images = [
            (im["file_name"], im["height"], im["width"], objects[im["id"]])
            for im in data["images"]
            if any(v != IGNORE for _, _, v in objects[im["id"]])
        ]
    except (KeyError, TypeError) as err:
        raise PrepareError(
            f"{path} is not a COCO instances file (bad or missing {one_line(err)})"
        ) from None
    return categories, sorted(images)


def run_tasks(tasks: list[Task], workers: int) -> None:
    """Paint ``tasks`` here, or in ``workers`` processes."""
    if workers <= 1 or len(tasks) < 2:
        for task in tasks:
            convert(task)
        return
    chunksize = max(1, min(64, len(tasks) // workers))
    with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
        try:
            for _ in pool.map(convert, tasks, chunksize=chunksize):
                pass
        except BaseException:  # an error or Ctrl-C: do not paint the rest first
            pool.shutdown(cancel_futures=True)
            raise


# -- command -----------------------------------------------------------------------------------
def split_from_json(
    root: Path,
    split: str,
    json_path: Path,
    other: tuple[Path, list[tuple[int, str]]] | None,
    workers: int,
    force: bool,
    report: Report,
) -> tuple[list[tuple[int, str]], list[Pair]]:
    """Paint the split's missing label PNGs (all with ``force``); its categories and list
    pairs. ``other`` is the JSON and categories of a split done before."""
    image_dir, label_dir = COCO_DIRS[split]
    categories, images = load_annotations(json_path)
    if other is not None and other[1] != categories:
        raise PrepareError(
            f"{json_path} and {other[0]} list different categories: class ids would differ"
        )
    if tuple(name for _, name in categories) != COCO_CLASS_NAMES:
        report.warn(
            f"{json_path} has {len(categories)} categories, not COCO's 80 classes: "
            f"label ids 1..{len(categories)} follow its category ids in ascending order"
        )
    pairs = [(f"{image_dir}/{f}", f"{label_dir}/{Path(f).stem}.png") for f, *_ in images]
    check_exists(root, [p for p, _ in pairs], json_path)
    tasks = [
        (str(root / label), h, w, objects, str(json_path))
        for (_, label), (_, h, w, objects) in zip(pairs, images, strict=True)
        if force or not (root / label).is_file()
    ]
    if tasks:
        require_pycocotools()
        report.info(f"{split}: painting {len(tasks)} label PNGs with {max(workers, 1)} processes")
    run_tasks(tasks, workers)
    report.info(
        f"{split}: {len(images)} annotated images in {json_path.name}: {len(tasks)} labels "
        f"written, {len(images) - len(tasks)} kept in {root / label_dir}"
    )
    return categories, pairs


def split_from_pngs(root: Path, split: str) -> list[Pair]:
    """List pairs for the label PNGs already present (no JSON)."""
    image_dir, label_dir = COCO_DIRS[split]
    labels = root / label_dir
    if not labels.is_dir():
        raise PrepareError(
            f"{annotations_path(root, image_dir)} and {labels} are missing; {layout(root)}"
        )
    stems = sorted(p.stem for p in labels.glob("*.png"))
    if not stems:
        raise PrepareError(f"{labels} holds no label PNG; {layout(root)}")
    return [(f"{image_dir}/{s}.jpg", f"{label_dir}/{s}.png") for s in stems]


def prepare_coco(
    root: Path, *, workers: int = 1, force: bool = False, report: Report | None = None
) -> list[str]:
    """Check a COCO 2014 tree, paint missing label PNGs, write the lists; the report lines."""
    report = report or Report()
    if not root.is_dir():
        raise PrepareError(f"{root} does not exist; {layout(root)}")
    for image_dir, _ in COCO_DIRS.values():
        if not (root / image_dir).is_dir():
            raise PrepareError(f"{root / image_dir} is missing; {layout(root)}")
    seen: tuple[Path, list[tuple[int, str]]] | None = None
    for split, (image_dir, _) in COCO_DIRS.items():
        json_path = annotations_path(root, image_dir)
        if json_path.is_file():
            categories, pairs = split_from_json(
                root, split, json_path, seen, workers, force, report
            )
            seen = (json_path, categories)
            origin = str(json_path)
        else:
            pairs = split_from_pngs(root, split)
            origin = str(root / COCO_DIRS[split][1])
        plan = plan_list(root / COCO_LISTS[split], None, force, lambda p=pairs: p, origin)
        check_exists(root, plan.files(), plan.origin)
        plan.commit(report)
    return report.lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=int, default=1, help="processes that paint label PNGs (default 1)"
    )


def run(args: argparse.Namespace, report: Report) -> None:
    prepare_coco(args.root, workers=args.workers, force=args.force, report=report)
