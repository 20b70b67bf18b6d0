"""The datasets with fixed fold rules or splits (registry kind few-shot): the built-in synthetic
set, PASCAL-5i and COCO-20i (list files) and FSS-1000 (class folders)."""

from __future__ import annotations

import os
from typing import Any

from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.data.folds import check_fold, fold_classes
from sdaanet.data.modules.common import data_root
from sdaanet.data.registry import DATASETS
from sdaanet.data.sources.base import Source
from sdaanet.data.sources.coco import CocoSource
from sdaanet.data.sources.fss1000 import FSS1000Source, class_folders, class_split
from sdaanet.data.sources.listfile import SplitListSource
from sdaanet.data.sources.pascal import PascalSource
from sdaanet.data.sources.synthetic import SYNTHETIC_CLASS_NAMES, SyntheticSource


class SyntheticDataModule(EpisodicDataModule):
    """The built-in synthetic dataset (no files). ``source``: ``seed``, ``image_size``,
    ``num_train``, ``num_val``, ``void_width``, ``distractor_probs`` (``SyntheticSource``)."""

    name = "synthetic"
    num_folds = DATASETS["synthetic"].num_folds

    def __init__(self, fold: int = 0, **kwargs: Any) -> None:
        super().__init__(fold=check_fold(fold, self.num_folds), **kwargs)

    def split_classes(self, split: str) -> list[int]:
        return fold_classes("synthetic", self.fold, "val" if split == "test" else split)

    def make_source(self, split: str) -> Source:
        options = dict(self.source_options)
        num = {"train": options.pop("num_train", None), "val": options.pop("num_val", None)}
        if "distractor_probs" in options:
            options["distractor_probs"] = tuple(options["distractor_probs"])
        return SyntheticSource(split=split, num_images=num.get(split, num["val"]), **options)

    def check(self, stage: str | None = None) -> None:
        return None

    @property
    def class_names(self) -> dict[int, str]:
        return dict(enumerate(SYNTHETIC_CLASS_NAMES, 1))


class _ListDataModule(EpisodicDataModule):
    """A dataset whose splits are list files under ``root`` (PASCAL, COCO). ``source``:
    ``train_list``, ``val_list`` (relative to ``root``; default the authors' names), ``cache``,
    ``num_threads``."""

    source_class: type[SplitListSource]

    def __init__(self, root: str | os.PathLike | None = None, fold: int = 0, **kwargs: Any):
        super().__init__(fold=check_fold(fold, self.num_folds), **kwargs)
        self.root = data_root(root, self.name)

    def _list(self, split: str) -> str | None:
        return self.source_options.get(f"{'val' if split == 'test' else split}_list")

    def make_source(self, split: str) -> Source:
        options = {k: v for k, v in self.source_options.items() if not k.endswith("_list")}
        split = "val" if split == "test" else split
        return self.source_class(self.root, split, list_file=self._list(split), **options)

    def check(self, stage: str | None = None) -> None:
        for split in ("train", "val") if stage in (None, "fit") else ("val",):
            self.source_class.checked_list(self.root, split, self._list(split))

    @property
    def class_names(self) -> dict[int, str]:
        return dict(enumerate(self.source_class.class_names, 1))


class PascalDataModule(_ListDataModule):
    """PASCAL-5i: VOC2012 + SBD (``sources.pascal``); fold i tests classes 5i+1..5i+5."""

    name = "pascal"
    num_folds = DATASETS["pascal"].num_folds
    source_class = PascalSource

    def split_classes(self, split: str) -> list[int]:
        return fold_classes("pascal", self.fold, "val" if split == "test" else split)


class CocoDataModule(_ListDataModule):
    """COCO-20i (``sources.coco``). ``fold_style``: ``interleaved`` (default; the authors'
    ``use_split_coco: True``, fold i tests 1+i, 5+i, ..., 77+i) or ``contiguous``
    (20i+1..20i+20)."""

    name = "coco"
    num_folds = DATASETS["coco"].num_folds
    source_class = CocoSource

    def __init__(self, *args: Any, fold_style: str = "interleaved", **kwargs: Any) -> None:
        if fold_style not in ("interleaved", "contiguous"):
            raise ValueError(
                f"fold_style must be 'interleaved' or 'contiguous', got {fold_style!r}"
            )
        super().__init__(*args, **kwargs)
        self.fold_style = fold_style

    def split_classes(self, split: str) -> list[int]:
        split = "val" if split == "test" else split
        return fold_classes("coco", self.fold, split, self.fold_style == "interleaved")


class FSS1000DataModule(EpisodicDataModule):
    """FSS-1000 (``sources.fss1000``): one class split (fold 0) into train/val/test classes.
    ``source``: ``split_seed`` (used only without the standard split files), ``cache``."""

    name = "fss1000"
    num_folds = DATASETS["fss1000"].num_folds

    def __init__(self, root: str | os.PathLike | None = None, fold: int = 0, **kwargs: Any):
        kwargs.setdefault("min_area", 1)  # every image holds its class, however small
        super().__init__(fold=check_fold(fold, self.num_folds), **kwargs)
        self.root = data_root(root, self.name)
        self._split: dict[str, list[str]] | None = None
        self._ids: dict[str, int] = {}

    def _class_split(self) -> dict[str, list[str]]:
        if self._split is None:
            self._ids = {n: i for i, n in enumerate(class_folders(self.root), 1)}
            self._split, _ = class_split(self.root, int(self.source_options.get("split_seed", 0)))
        return self._split

    def split_classes(self, split: str) -> list[int]:
        names = self._class_split()[split]
        return sorted(self._ids[n] for n in names)

    def make_source(self, split: str) -> Source:
        return FSS1000Source(self.root, split, **self.source_options)

    def check(self, stage: str | None = None) -> None:
        class_folders(self.root)

    @property
    def class_names(self) -> dict[int, str]:
        self._class_split()
        return {i: n for n, i in self._ids.items()}
