"""The test-only sets of PATNet's cross-domain benchmark (registry kind cross-domain):
Deepglobe, ISIC, Chest X-ray and FSS-1000 as PATNet tests it, with the episodes PATNet draws
(``ClassCycleEpisodes``, ``SupportPoolEpisodes``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection
from typing import Any

import numpy as np

from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.data.episodes import EpisodeDataset, EpisodePlan
from sdaanet.data.folds import check_fold
from sdaanet.data.modules.common import data_root
from sdaanet.data.sources.crossdomain import CrossDomainSource, Listing, listing
from sdaanet.data.transforms import build_transform
from sdaanet.errors import DataConfigError, DataError


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

    num_folds = 1  # every cross-domain set (sdaanet.data.registry)

    def __init__(self, root: str | os.PathLike | None = None, fold: int = 0, **kwargs: Any):
        kwargs.setdefault("min_area", 1)  # any foreground: PATNet has no area rule
        super().__init__(fold=check_fold(fold, self.num_folds), **kwargs)
        if self.ways != 1:
            raise ValueError(f"{self.name} episodes are 1-way (PATNet's), got ways={self.ways}")
        self.root = data_root(root, self.name)
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
