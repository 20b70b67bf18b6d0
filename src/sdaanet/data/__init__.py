"""Episodic few-shot data: fold splits, sources, episodes, transforms and the datamodules."""

import cv2

from sdaanet.data.collate import collate_episodes
from sdaanet.data.episodes import EpisodeDataset
from sdaanet.data.folds import class_names, fold_classes, novel_classes, rule_folds
from sdaanet.data.index import EpisodeIndex, build_index
from sdaanet.data.registry import DATASETS
from sdaanet.data.sampler import EpisodeSampler
from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

# OpenCV's worker pool does not survive fork(): a DataLoader worker forked after the main process
# ran a threaded cv2 call deadlocks on its first one. Loading is parallel across workers instead.
cv2.setNumThreads(0)

DATAMODULES = ("EpisodicDataModule", *(d.datamodule for d in DATASETS.values()))

__all__ = [
    *DATAMODULES,
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EpisodeDataset",
    "EpisodeIndex",
    "EpisodeSampler",
    "build_index",
    "build_transform",
    "class_names",
    "collate_episodes",
    "fold_classes",
    "novel_classes",
    "rule_folds",
]


def __getattr__(name: str):
    # the datamodules pull in Lightning; import them only when asked for
    if name == "EpisodicDataModule":
        from sdaanet.data.datamodule import EpisodicDataModule

        return EpisodicDataModule
    if name in DATAMODULES:
        from sdaanet.data import modules

        return getattr(modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
