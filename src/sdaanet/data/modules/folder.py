"""Datasets of class-id label maps in a folder (``sources.folder``): your own, and MSRC-v2 with
its fixed folds."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sdaanet.data.datamodule import EpisodicDataModule, plain
from sdaanet.data.folds import (
    MSRC_FOLDS,
    MSRC_STUFF,
    NUM_FOLDS,
    check_fold,
    class_ids_of,
    rule_folds,
)
from sdaanet.data.modules.common import data_root
from sdaanet.data.sources.base import Source
from sdaanet.data.sources.folder import FolderSource, check_folder, read_classes
from sdaanet.errors import DataConfigError


class FolderDataModule(EpisodicDataModule):
    """A user dataset (``sources.folder``: ``images/``, ``labels/``, ``classes.tsv``).

    Folds: ``folds`` (one list of class ids or names per fold) if given, else the ids of
    ``classes.tsv`` dealt into ``num_folds`` folds by ``fold_rule`` (``contiguous`` or
    ``interleaved``, ``folds.rule_folds``). ``background_classes`` (ids or names) are never an
    episode's target, so their pixels are background everywhere (scenery: grass, sky, road);
    they take no part in the folds. ``source``: ``cache`` (class areas, outside ``root``).
    """

    name = "folder"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        fold: int = 0,
        num_folds: int = NUM_FOLDS,
        fold_rule: str = "contiguous",
        folds: Sequence[Sequence[int | str]] | None = None,
        background_classes: Sequence[int | str] = (),
        **kwargs: Any,
    ) -> None:
        self.root = data_root(root, self.name)
        self.num_folds = int(num_folds)
        self.fold_rule = fold_rule
        self.explicit_folds = plain(folds)
        self.background = list(plain(background_classes) or ())
        super().__init__(fold=fold, **kwargs)
        self._folds: list[list[int]] | None = None
        self._names: dict[int, str] | None = None
        self._background: list[int] = []

    @property
    def background_ids(self) -> list[int]:
        """The ids of ``background_classes``."""
        self.folds()
        return self._background

    def folds(self) -> list[list[int]]:
        """The novel classes of every fold."""
        if self._folds is None:
            check_folder(self.root)
            names = read_classes(self.root / "classes.tsv")
            background = (
                class_ids_of(self.background, list(names), names, "background_classes")
                if self.background
                else []
            )
            dealt = (
                [c for c in names if c not in background] if self.explicit_folds is None else names
            )
            folds = rule_folds(dealt, self.num_folds, self.fold_rule, self.explicit_folds, names)
            both = sorted({c for fold in folds for c in fold} & set(background))
            if both:
                raise DataConfigError(
                    f"{names[both[0]]!r} is both in a fold and in background_classes; "
                    "a background class is never a target: remove it from one of them"
                )
            self._folds, self._names, self._background = folds, names, background
            check_fold(self.fold, len(self._folds))
        return self._folds

    def split_classes(self, split: str) -> list[int]:
        novel = self.folds()[self.fold]
        if split in ("val", "test"):
            return novel
        return [c for c in self.class_names if c not in novel and c not in self._background]

    def make_source(self, split: str) -> Source:
        return FolderSource(self.root, split, **self.source_options)

    def check(self, stage: str | None = None) -> None:
        self.folds()

    @property
    def class_names(self) -> dict[int, str]:
        self.folds()
        assert self._names is not None
        return self._names


class MSRCDataModule(FolderDataModule):
    """MSRC-v2 with object-level labels, read as a folder dataset: three folds of five object
    classes (``folds.MSRC_FOLDS``); the stuff classes (``folds.MSRC_STUFF``) are background; no
    training photo holds a novel class (its test photos); supports need >= 1024 pixels."""

    name = "msrc"
    MIN_AREA = 1024  # PASCAL's 2x32x32 scaled to MSRC's ~3x smaller photos (conf/data/msrc.yaml)

    def __init__(self, root: str | os.PathLike | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("folds", MSRC_FOLDS)
        kwargs.setdefault("background_classes", MSRC_STUFF)
        kwargs.setdefault("drop_novel_images", True)
        kwargs.setdefault("min_area", self.MIN_AREA)
        super().__init__(root=root, num_folds=len(MSRC_FOLDS), **kwargs)
