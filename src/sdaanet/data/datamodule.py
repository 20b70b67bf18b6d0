"""The episodic LightningDataModule: one subclass per dataset (``sdaanet.data.modules``), built by
Hydra from ``conf/data/<name>.yaml``::

    dm = hydra.utils.instantiate(cfg.data, shot=cfg.shot, seed=cfg.seed)
    dm.check()          # optional: one-line DataNotFoundError in milliseconds if data is missing

Training episodes use ``seed`` (new draws every epoch via ``EpisodeSampler.set_epoch``);
validation/test episodes use ``val_seed`` and are the same every epoch, every run, for any
``num_workers`` and any DDP world size (the samplers shard themselves: set Lightning's
``use_distributed_sampler=False``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from sdaanet.data.collate import collate_episodes
from sdaanet.data.episodes import EpisodeDataset
from sdaanet.data.sampler import EpisodeSampler
from sdaanet.data.sources.base import Source
from sdaanet.data.transforms import RECIPES, build_transform


def plain(value: Any) -> Any:
    """OmegaConf containers (Hydra passes them through) -> plain Python."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning resumes mid-epoch: its state is how many batches of the current
    epoch it has delivered, and after `load_state_dict` its next epoch starts past them, so a run
    stopped mid-epoch (SIGTERM) goes on with the episodes it had not trained on."""

    _delivered = 0

    def __iter__(self) -> Iterator[Any]:
        self._delivered = self.sampler.start // self.batch_size
        return self._counted(super().__iter__())  # created now, as DataLoader.__iter__ does

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._delivered += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"batches": self._delivered}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """The next epoch starts past `state["batches"]` (none once the epoch is complete)."""
        batches = int(state.get("batches", 0))
        self.sampler.start = batches * self.batch_size if batches < len(self) else 0


# data settings that have moved to another node: key -> its key now. A checkpoint written before
# a move records the key with its data settings (and its network node holds the value).
MOVED_SETTINGS: dict[str, str] = {"ppm_scales": "model.ppm_scales"}


def recorded_settings(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A checkpoint's recorded data settings (None: none recorded) as the datamodule takes them,
    without the keys that have moved to another node (`MOVED_SETTINGS`)."""
    if data is None:
        return None
    return {k: v for k, v in data.items() if k not in MOVED_SETTINGS}


def _check_choices(
    train_transform: str, val_transform: str, selection: str, holdout_fraction: float
) -> None:
    """A one-line ValueError for a transform recipe, `selection` or holdout share out of range."""
    for kind, recipe in (("train", train_transform), ("val", val_transform)):
        if not recipe.startswith(kind) or recipe not in RECIPES:
            options = [r for r in RECIPES if r.startswith(kind)]
            raise ValueError(f"{kind}_transform must be one of {options}, got {recipe!r}")
    if selection not in ("novel", "base"):
        raise ValueError(f"selection must be 'novel' or 'base', got {selection!r}")
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")


class EpisodicDataModule(L.LightningDataModule, abc.ABC):
    """Episodic train/val/test loaders over one dataset and fold.

    Subclasses say which files make a split (``make_source``), which classes each split targets
    (``split_classes``) and how to check the files exist (``check``).

    Args:
        fold: the fold whose novel classes are validated/tested; the others are trained on.
        shot: supports per class (from the top-level config).
        seed: training episode seed (from the top-level config).
        ways: classes per episode (1: the paper's binary episodes; N: multi-class mode).
        train_size, val_size: square side in pixels of training / validation inputs.
        batch_size, val_batch_size: episodes per batch.
        num_workers: DataLoader workers (persistent when > 0).
        val_episodes: validation/test episodes (None: one per validation query).
        val_seed: validation/test episode seed.
        train_episodes: training episodes per epoch (None: one per training query).
        pin_memory: DataLoader ``pin_memory``, used only when CUDA is available.
        min_area: minimum class area in original-resolution pixels (paper-vs-code.md code map).
        train_transform: ``train`` (the authors' recipe) or ``train_paper``.
        val_transform: ``val`` (the authors' warp), ``val_pad`` (the authors' ``test_Resize``) or
            ``val_paper`` (aspect kept, zero padding).
        strict_query_classes: draw targets only among a query's classes >= ``min_area``.
        drop_novel_images: leave every training image holding a novel-class pixel out (by
            default they stay, with those pixels as background, as in the authors' code).
        return_raw_label: evaluation items also carry ``raw_query_mask`` at the original size.
        selection: what validation (hence checkpoint selection) runs on. ``novel``: the test
            episodes' novel classes, as the authors did. ``base``: held-out training images and
            the base classes, so the novel classes are never seen before the test; the held-out
            images (``holdout_fraction`` of the training list, drawn from ``holdout_seed``) are
            then left out of training. Test episodes are the same either way.
        source: source-specific options (see the subclass).
    """

    name = "episodic"

    def __init__(
        self,
        fold: int = 0,
        shot: int = 1,
        seed: int = 0,
        ways: int = 1,
        train_size: int = 473,
        val_size: int = 473,
        batch_size: int = 4,
        val_batch_size: int = 1,
        num_workers: int = 0,
        val_episodes: int | None = 1000,
        val_seed: int = 321,
        train_episodes: int | None = None,
        pin_memory: bool = False,
        min_area: int = 2 * 32 * 32,
        train_transform: str = "train",
        val_transform: str = "val",
        strict_query_classes: bool = False,
        drop_novel_images: bool = False,
        return_raw_label: bool = False,
        selection: str = "novel",
        holdout_fraction: float = 0.1,
        holdout_seed: int = 0,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.fold = int(fold)
        self.shot = int(shot)
        self.seed = int(seed)
        self.ways = int(ways)
        self.train_size = int(train_size)
        self.val_size = int(val_size)
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size)
        self.num_workers = int(num_workers)
        self.val_episodes = val_episodes
        self.val_seed = int(val_seed)
        self.train_episodes = train_episodes
        self.pin_memory = bool(pin_memory)
        self.min_area = int(min_area)
        _check_choices(train_transform, val_transform, selection, holdout_fraction)
        self.train_transform = train_transform
        self.val_transform = val_transform
        self.strict_query_classes = bool(strict_query_classes)
        self.drop_novel_images = bool(drop_novel_images)
        self.return_raw_label = bool(return_raw_label)
        self.selection = selection
        self.holdout_fraction = float(holdout_fraction)
        self.holdout_seed = int(holdout_seed)
        self.source_options = dict(plain(source) or {})
        self.datasets: dict[str, EpisodeDataset] = {}
        self._train_loader: ResumableLoader | None = None
        self._resume: dict[str, int] = {}  # a checkpoint's train loader state, for the next one

    # -- what a dataset defines ---------------------------------------------------------------
    @abc.abstractmethod
    def split_classes(self, split: str) -> list[int]:
        """Class ids ``split`` targets: "train" the fold's base classes, "val"/"test" novel ones."""

    @abc.abstractmethod
    def make_source(self, split: str) -> Source:
        """The images of ``split``."""

    @abc.abstractmethod
    def check(self, stage: str | None = None) -> None:
        """Raise a one-line ``DataNotFoundError`` if the files of ``stage`` are missing.

        Only existence is checked, so it takes milliseconds. ``stage`` None or "fit" checks
        train and val; "validate"/"test" checks the evaluation split only.
        """

    @property
    def class_names(self) -> dict[int, str]:
        """id -> name of every class of the dataset."""
        return {}

    # -- derived ------------------------------------------------------------------------------
    @property
    def n_test_classes(self) -> int:
        """Novel classes of the fold (the test class-mIoU averages over them)."""
        return len(self.split_classes("test"))

    @property
    def n_val_classes(self) -> int:
        """Classes the validation class-mIoU averages over (base ones with ``selection=base``)."""
        return len(self.split_classes("train" if self.selection == "base" else "val"))

    def holdout(self, n_images: int) -> list[int]:
        """The training images (source indices) held out for ``selection=base``."""
        k = max(1, round(self.holdout_fraction * n_images))
        perm = np.random.default_rng(self.holdout_seed).permutation(n_images)
        return sorted(int(i) for i in perm[:k])

    def _dataset(self, split: str) -> EpisodeDataset:
        train = split == "train"
        size = self.train_size if train else self.val_size
        novel = self.split_classes("val")
        on_base = self.selection == "base" and split in ("train", "val")
        source = self.make_source("train" if on_base else split)
        skip: Sequence[int] = ()
        if on_base:
            held_out = self.holdout(len(source))
            skip = held_out if train else sorted(set(range(len(source))) - set(held_out))
        return EpisodeDataset(
            source,
            self.split_classes("train" if on_base else split),
            self.shot,
            build_transform(self.train_transform if train else self.val_transform, size),
            seed=self.seed if train else self.val_seed,
            train=train,
            episodes=self.train_episodes if train else self.val_episodes,
            min_area=self.min_area,
            return_raw_label=self.return_raw_label and not train,
            strict_query_classes=self.strict_query_classes,
            ways=self.ways,
            drop_images_with=novel if train and self.drop_novel_images else (),
            skip_images=skip,
            class_names=self.class_names,
        )

    def _eval_split(self, stage: str | None) -> str:
        # the test episodes are the validation ones, unless validation runs on base classes or
        # the dataset has separate test classes (FSS-1000)
        if stage == "test" and (
            self.selection == "base" or self.split_classes("test") != self.split_classes("val")
        ):
            return "test"
        return "val"

    def reseed(self, val_seed: int) -> None:
        """Draw the validation/test episodes from ``val_seed`` from now on (each seed of an
        evaluation), keeping the datasets built so far."""
        self.val_seed = int(val_seed)
        for split, dataset in self.datasets.items():
            if split != "train":
                dataset.seed = self.val_seed

    def setup(self, stage: str | None = None) -> None:
        self.check(stage)
        splits = ["train", "val"] if stage in (None, "fit") else [self._eval_split(stage)]
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    @property
    def train_set(self) -> EpisodeDataset | None:
        return self.datasets.get("train")

    @property
    def val_set(self) -> EpisodeDataset | None:
        return self.datasets.get("val")

    # -- loaders ------------------------------------------------------------------------------
    def _loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            self.setup("fit" if split == "train" else split.replace("val", "validate"))
        dataset = self.datasets[split]
        train = split == "train"
        batch_size = self.batch_size if train else self.val_batch_size
        return (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=batch_size,
            sampler=EpisodeSampler(len(dataset), shuffle=train),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            drop_last=train and len(dataset) >= batch_size,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_episodes,
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train")
        loader.load_state_dict(self._resume)
        self._train_loader, self._resume = loader, {}
        return loader

    def state_dict(self) -> dict[str, Any]:
        """The train loader's position in its epoch: Lightning builds the loader before it
        restores its own loops (to count the steps), so the resume goes through here."""
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = dict(state.get("train_loader", {}))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """The validation episodes (same ``val_seed`` keys), or the test split's if it has one."""
        return self._loader(self._eval_split("test"))
