"""One LightningDataModule per dataset (``data=<name>`` in Hydra): synthetic, pascal, coco,
fss1000, folder and msrc, and the test-only sets of PATNet's cross-domain benchmark (deepglobe,
isic, chest_xray, fss1000_patnet). Each only says which files make a split and which classes each
split targets; episodes, transforms and loaders are shared (``EpisodicDataModule``); the
cross-domain sets also draw their episodes PATNet's way (``ClassCycleEpisodes``,
``SupportPoolEpisodes``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdaanet.data.datamodule import EpisodicDataModule, plain
from sdaanet.data.episodes import EpisodeDataset, EpisodePlan
from sdaanet.data.folds import (
    MSRC_FOLDS,
    MSRC_STUFF,
    NUM_FOLDS,
    check_fold,
    class_ids_of,
    fold_classes,
    rule_folds,
)
from sdaanet.data.sources.base import Source
from sdaanet.data.sources.coco import CocoSource
from sdaanet.data.sources.crossdomain import CrossDomainSource, Listing, listing
from sdaanet.data.sources.folder import FolderSource, check_folder, read_classes
from sdaanet.data.sources.fss1000 import FSS1000Source, class_folders, class_split
from sdaanet.data.sources.listfile import SplitListSource
from sdaanet.data.sources.pascal import PascalSource
from sdaanet.data.sources.synthetic import SYNTHETIC_CLASS_NAMES, SyntheticSource
from sdaanet.data.transforms import build_transform
from sdaanet.errors import DataConfigError, DataError


def _root(root: str | os.PathLike | None, name: str) -> Path:
    if root is None:
        raise ValueError(f"data.root must be set for {name}")
    return Path(os.fspath(root)).expanduser()


class SyntheticDataModule(EpisodicDataModule):
    """The built-in synthetic dataset (no files). ``source``: ``seed``, ``image_size``,
    ``num_train``, ``num_val``, ``void_width``, ``distractor_probs`` (``SyntheticSource``)."""

    name = "synthetic"
    num_folds = NUM_FOLDS

    def __init__(self, fold: int = 0, **kwargs: Any) -> None:
        super().__init__(fold=check_fold(fold, NUM_FOLDS), **kwargs)

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
        super().__init__(fold=check_fold(fold, NUM_FOLDS), **kwargs)
        self.root = _root(root, self.name)

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
    num_folds = NUM_FOLDS
    source_class = PascalSource

    def split_classes(self, split: str) -> list[int]:
        return fold_classes("pascal", self.fold, "val" if split == "test" else split)


class CocoDataModule(_ListDataModule):
    """COCO-20i (``sources.coco``). ``fold_style``: ``interleaved`` (default; the authors'
    ``use_split_coco: True``, fold i tests 1+i, 5+i, ..., 77+i) or ``contiguous``
    (20i+1..20i+20)."""

    name = "coco"
    num_folds = NUM_FOLDS
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
    num_folds = 1

    def __init__(self, root: str | os.PathLike | None = None, fold: int = 0, **kwargs: Any):
        kwargs.setdefault("min_area", 1)  # every image holds its class, however small
        super().__init__(fold=check_fold(fold, 1), **kwargs)
        self.root = _root(root, self.name)
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
        self.root = _root(root, self.name)
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


class ClassCycleEpisodes(EpisodeDataset):
    """PATNet's test episodes (Deepglobe, ISIC, Chest X-ray): episode ``key`` targets class
    ``classes[key % C]`` (the usable classes in id order); from ``default_rng([seed, key])`` its
    query is drawn uniformly among that class's images, then K distinct supports among the others,
    then the transform seeds. Evaluation only (``train=False``)."""

    def plan(self, key: int) -> EpisodePlan:
        key = int(key)
        if key < 0:
            raise IndexError(f"episode keys are >= 0, got {key}")
        class_id = self._usable[key % len(self._usable)]
        rng = np.random.default_rng([self.seed, key])
        pool = self._pools[class_id]
        query = int(pool[int(rng.integers(len(pool)))])
        supports = self._supports(rng, class_id, query)
        seeds = tuple(int(s) for s in rng.integers(0, 2**32, size=1 + self.shot))
        position = self._class_pos[class_id]
        return EpisodePlan(key, query, (class_id,), (position,), (supports,), seeds)


class SupportPoolEpisodes(EpisodeDataset):
    """HSNet's FSS-1000 test episodes: episode ``key`` queries image ``key % N`` in list order
    (so N episodes show every image once, as ``EpisodeDataset`` does for validation) and its K
    distinct supports, never the query, come only from ``support_images`` (source indices)."""

    def __init__(self, *args: Any, support_images: Collection[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = np.asarray(sorted(support_images), dtype=np.int64)
        self._pools = {c: p[np.isin(p, allowed)] for c, p in self._pools.items()}
        short = [c for c in self._usable if len(self._pools[c]) < self.shot + 1]
        if short:
            first = [self.index.class_images[c][0] for c in short[:3]]
            where = ", ".join(self.source.describe(i) for i in first)
            raise DataError(
                f"{len(short)} classes have fewer than shot+1 = {self.shot + 1} support images "
                f"(1..10.jpg with foreground), the classes of: {where}"
            )


class _CrossDomainDataModule(EpisodicDataModule):
    """A test-only set of PATNet's cross-domain benchmark (``sources.crossdomain``): one fold,
    all classes tested, 1-way episodes drawn by ``ClassCycleEpisodes``, input and label warped
    to ``val_size``. ``root`` is PATNet's ``--datapath`` (the folder holding ``Deepglobe/``,
    ``ISIC/``, ``LungSegmentation/``, ``FSS-1000/``). ``source``: ``cache`` (class areas,
    outside ``root``), ``num_threads``."""

    num_folds = 1

    def __init__(self, root: str | os.PathLike | None = None, fold: int = 0, **kwargs: Any):
        kwargs.setdefault("min_area", 1)  # any foreground: PATNet has no area rule
        super().__init__(fold=check_fold(fold, 1), **kwargs)
        if self.ways != 1:
            raise ValueError(f"{self.name} episodes are 1-way (PATNet's), got ways={self.ways}")
        self.root = _root(root, self.name)
        self._listing: Listing | None = None

    def listing(self) -> Listing:
        """The files and classes (cached; a one-line ``DataNotFoundError`` if a folder is
        missing)."""
        if self._listing is None:
            self._listing = listing(self.name, self.root, self.source_options.get("split_file"))
        return self._listing

    def split_classes(self, split: str) -> list[int]:
        return sorted(self.listing().class_names)

    def make_source(self, split: str) -> CrossDomainSource:
        options = {k: v for k, v in self.source_options.items() if k != "split_file"}
        return CrossDomainSource(self.root, self.name, self.listing(), **options)

    def check(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            raise DataConfigError(
                f"{self.name} is a test set of the cross-domain benchmark, not for training: "
                f"train on pascal, then run sdaanet-eval ckpt_path=<checkpoint> data={self.name}"
            )
        self.listing()

    @property
    def class_names(self) -> dict[int, str]:
        return self.listing().class_names

    def _episodes(self, source: CrossDomainSource, **options: Any) -> EpisodeDataset:
        return ClassCycleEpisodes(source, **options)

    def _dataset(self, split: str) -> EpisodeDataset:
        source = self.make_source(split)
        return self._episodes(
            source,
            classes=self.split_classes(split),
            shot=self.shot,
            transform=build_transform(self.val_transform, self.val_size),
            seed=self.val_seed,
            episodes=self.val_episodes,
            min_area=self.min_area,
            return_raw_label=self.return_raw_label,
            class_names=self.class_names,
        )


class DeepglobeDataModule(_CrossDomainDataModule):
    """Deepglobe land cover, PATNet's 408x408 tiles: 6 classes (folders 1..6), 600 episodes."""

    name = "deepglobe"


class ISICDataModule(_CrossDomainDataModule):
    """ISIC 2018 Task 1 lesion masks: 3 classes (folders 1..3 of the training input), 600
    episodes."""

    name = "isic"


class ChestXrayDataModule(_CrossDomainDataModule):
    """Chest X-ray lung masks (Shenzhen + Montgomery, ``LungSegmentation/``): 1 class, 600
    episodes."""

    name = "chest_xray"


class FSS1000PatnetDataModule(_CrossDomainDataModule):
    """FSS-1000 as PATNet and HSNet test it: the 240 classes of ``FSS-1000/splits/test.txt``
    (``source.split_file`` to read another file), every image a query once (``val_episodes`` =
    the number of test images, 2400 on the full set; another count warns), supports only
    ``1..10.jpg`` of the query's class (``SupportPoolEpisodes``)."""

    name = "fss1000_patnet"

    def _episodes(self, source: CrossDomainSource, **options: Any) -> EpisodeDataset:
        supports = source.listing.supports or ()
        dataset = SupportPoolEpisodes(source, support_images=supports, **options)
        n_images = len(dataset.index.queries)
        if len(dataset) != n_images:
            warnings.warn(
                f"fss1000_patnet: {len(dataset)} episodes but {n_images} test images; every "
                f"image is a query exactly once only with data.val_episodes={n_images}",
                stacklevel=2,
            )
        return dataset
