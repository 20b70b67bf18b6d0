"""Sources: files (or a generator) -> (image uint8 HxWx3 RGB, label uint8 HxW class ids)."""

from sdaanet.data.sources.base import Source, label_areas
from sdaanet.data.sources.coco import COCO_LISTS, CocoSource
from sdaanet.data.sources.crossdomain import CrossDomainSource
from sdaanet.data.sources.folder import FolderSource
from sdaanet.data.sources.fss1000 import FSS1000Source
from sdaanet.data.sources.listfile import PairSource, SplitListSource, prepare_hint
from sdaanet.data.sources.pascal import PASCAL_LISTS, PascalSource
from sdaanet.data.sources.synthetic import SyntheticSource

__all__ = [
    "COCO_LISTS",
    "PASCAL_LISTS",
    "CocoSource",
    "CrossDomainSource",
    "FSS1000Source",
    "FolderSource",
    "PairSource",
    "PascalSource",
    "Source",
    "SplitListSource",
    "SyntheticSource",
    "label_areas",
    "prepare_hint",
]
