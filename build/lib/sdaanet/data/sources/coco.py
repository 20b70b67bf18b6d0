"""MS-COCO 2014 with class-id PNG labels (COCO-20i), as in the authors' / PFENet's lists.

Layout under ``root``::

    train2014/*.jpg, val2014/*.jpg
    annotations/train2014/*.png, annotations/val2014/*.png   contiguous ids 1-80, 0 bg, 255 void
    lists/coco/train_data_list.txt, lists/coco/val_data_list.txt

List lines read ``<image> <label>`` relative to the root; a leading ``/`` is dropped (the authors'
lists start with one). ``sdaanet-data coco --root <root>`` checks the tree and writes missing lists
from the files present. Converting the COCO json annotations into the PNGs is not done here.
"""

from __future__ import annotations

from sdaanet.data.folds import COCO_CLASS_NAMES
from sdaanet.data.sources.listfile import SplitListSource

COCO_LISTS = {
    "train": "lists/coco/train_data_list.txt",
    "val": "lists/coco/val_data_list.txt",
}
COCO_DIRS = {
    "train": ("train2014", "annotations/train2014"),
    "val": ("val2014", "annotations/val2014"),
}


class CocoSource(SplitListSource):
    name = "coco"
    num_classes = 80
    class_names = COCO_CLASS_NAMES

    default_lists = COCO_LISTS
