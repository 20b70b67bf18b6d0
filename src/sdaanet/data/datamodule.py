"""One LightningDataModule for every source, built by Hydra from ``conf/data/<name>.yaml``::

    dm = hydra.utils.instantiate(cfg.data, shot=cfg.shot, seed=cfg.seed)
    dm.check()          # optional: one-line DataNotFoundError in milliseconds if data is missing

Training episodes use ``seed`` (new draws every epoch via ``EpisodeSampler.set_epoch``);
validation/test episodes use ``val_seed`` and are the same every epoch and every run.
Under DDP, set Lightning's ``use_distributed_sampler=False``: the samplers shard themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import lightning as L
from torch.utils.data import DataLoader

from sdaanet.data.episodes import EpisodeDataset, EpisodeSampler
from sdaanet.data.folds import class_names as dataset_class_names
from sdaanet.data.folds import fold_classes
from sdaanet.data.sources import check_source, make_source
from sdaanet.data.transforms import build_transform


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # workers are the parallelism; avoid oversubscribing the cores


def _plain(value: Any) -> Any:
    """OmegaConf containers (Hydra passes them through) -> plain Python."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return value


class EpisodicDataModule(L.LightningDataModule):
    """Episodic train/val/test loaders over one source and fold.

    Args:
        name: source name: ``synthetic``, ``pascal`` or ``coco``.
        root: dataset root (unused by ``synthetic``).
        fold: fold 0-3; its novel classes are validated/tested, the others trained on.
        shot: supports per episode (from the top-level config).
        seed: training episode seed (from the top-level config).
        ppm_scales, n_test_classes: read by the model / metrics; stored here unchanged.
        train_size, val_size: square side in pixels of training / validation inputs.
        batch_size, val_batch_size: episodes per batch.
        num_workers: DataLoader workers (persistent when > 0).
        val_episodes: validation/test episodes (None: one per validation query).
        val_seed: validation/test episode seed.
        train_episodes: training episodes per epoch (None: one per training query).
        pin_memory: DataLoader ``pin_memory``.
        min_area: minimum class area (pixels, original resolution) for the index (digest §4.2).
        train_transform: training recipe (``transforms.RECIPES``).
        resized_val: warp-resize validation inputs (True, the authors' default) or shrink and pad
            top-left (False, ``test_Resize``).
        use_split_coco: COCO-20i interleaved folds (the authors' setting) or contiguous ones.
        strict_query_classes: draw targets only among a query's classes >= ``min_area``.
        return_raw_label: validation items also carry ``raw_query_mask`` (batch size 1 only).
        source: source-specific options (``sources.make_source``).
    """

    def __init__(
        self,
        name: str,
        root: str | None = None,
        fold: int = 0,
        shot: int = 1,
        seed: int = 0,
        ppm_scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125),
        n_test_classes: int = 5,
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
        resized_val: bool = True,
        use_split_coco: bool = True,
        strict_query_classes: bool = False,
        return_raw_label: bool = False,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.root = None if root is None else os.fspath(root)
        self.fold = int(fold)
        self.shot = int(shot)
        self.seed = int(seed)
        self.ppm_scales = list(_plain(ppm_scales))
        self.n_test_classes = int(n_test_classes)
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
        self.train_transform = train_transform
        self.resized_val = bool(resized_val)
        self.use_split_coco = bool(use_split_coco)
        self.strict_query_classes = bool(strict_query_classes)
        self.return_raw_label = bool(return_raw_label)
        self.source_options = dict(_plain(source) or {})
        # cheap, file-free validation of the configuration
        self.train_classes = fold_classes(name, self.fold, "train", self.use_split_coco)
        self.val_classes = fold_classes(name, self.fold, "val", self.use_split_coco)
        if len(self.val_classes) != self.n_test_classes:
            raise ValueError(
                f"n_test_classes={self.n_test_classes} but fold {self.fold} of {name} has "
                f"{len(self.val_classes)} novel classes"
            )
        self.class_names = dataset_class_names(name)
        self.train_set: EpisodeDataset | None = None
        self.val_set: EpisodeDataset | None = None

    # -- data presence ------------------------------------------------------------------------
    def check(self, stage: str | None = None) -> None:
        """Raise a one-line ``DataNotFoundError`` if files needed for ``stage`` are missing.

        Only existence is checked (root and list files), so it takes milliseconds.
        ``stage`` None or "fit" checks train and val; "validate"/"test" checks val only.
        """
        splits = ("train", "val") if stage in (None, "fit") else ("val",)
        check_source(self.name, self.root, splits, **self.source_options)

    def _dataset(self, split: str) -> EpisodeDataset:
        train = split == "train"
        src = make_source(self.name, self.root, split, **self.source_options)
        if train:
            transform = build_transform(self.train_transform, self.train_size)
        else:
            transform = build_transform("val" if self.resized_val else "val_pad", self.val_size)
        return EpisodeDataset(
            src,
            self.train_classes if train else self.val_classes,
            self.shot,
            transform,
            seed=self.seed if train else self.val_seed,
            train=train,
            episodes=self.train_episodes if train else self.val_episodes,
            min_area=self.min_area,
            return_raw_label=self.return_raw_label and not train,
            strict_query_classes=self.strict_query_classes,
        )

    def setup(self, stage: str | None = None) -> None:
        self.check(stage)
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset("train")
        if self.val_set is None:
            self.val_set = self._dataset("val")

    # -- loaders ------------------------------------------------------------------------------
    def _loader(self, dataset: EpisodeDataset, train: bool) -> DataLoader:
        batch_size = self.batch_size if train else self.val_batch_size
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=EpisodeSampler(len(dataset), shuffle=train),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=train and len(dataset) >= batch_size,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=_worker_init if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        """The validation episodes (same ``val_seed`` keys)."""
        return self.val_dataloader()
