"""PASCAL VOC2012 + SBD augmented annotations (PASCAL-5i).

Layout under ``root`` (the authors' / PFENet's)::

    JPEGImages/<id>.jpg
    SegmentationClassAug/<id>.png          class ids 0-20, 255 = boundary/void
    lists/pascal/voc_sbd_merge_noduplicate.txt   train list
    lists/pascal/val.txt                         val list (VOC2012 val, 1449 images)

List lines read ``JPEGImages/<id>.jpg SegmentationClassAug/<id>.png``. ``sdaanet-data pascal
--root <root>`` checks the tree and writes missing list files.
"""

from __future__ import annotations

import os

from sdaanet.data.folds import VOC_CLASS_NAMES
from sdaanet.data.sources.listfile import ListSource

PASCAL_LISTS = {
    "train": "lists/pascal/voc_sbd_merge_noduplicate.txt",
    "val": "lists/pascal/val.txt",
}
PASCAL_REQUIRED_DIRS = ("JPEGImages", "SegmentationClassAug")


def pascal_prepare_hint(root: str | os.PathLike) -> str:
    return f"sdaanet-data pascal --root {root}"


class PascalSource(ListSource):
    name = "pascal"
    num_classes = 20
    class_names = VOC_CLASS_NAMES

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        list_file: str | None = None,
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        if list_file is None:
            if split not in PASCAL_LISTS:
                raise ValueError(f"split must be one of {sorted(PASCAL_LISTS)}, got {split!r}")
            list_file = PASCAL_LISTS[split]
        self.split = split
        super().__init__(
            root,
            list_file,
            prepare_hint=pascal_prepare_hint(root),
            cache=cache,
            num_threads=num_threads,
        )
