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

from sdaanet.data.folds import VOC_CLASS_NAMES
from sdaanet.data.sources.listfile import SplitListSource

PASCAL_LISTS = {
    "train": "lists/pascal/voc_sbd_merge_noduplicate.txt",
    "val": "lists/pascal/val.txt",
}
PASCAL_REQUIRED_DIRS = ("JPEGImages", "SegmentationClassAug")


class PascalSource(SplitListSource):
    name = "pascal"
    num_classes = 20
    class_names = VOC_CLASS_NAMES

    default_lists = PASCAL_LISTS
