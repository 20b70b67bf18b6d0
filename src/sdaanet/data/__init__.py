"""Episodic few-shot data: fold splits, sources, episodes, transforms and the datamodule."""

from sdaanet.data.episodes import EpisodeDataset, EpisodeIndex, EpisodeSampler, build_index
from sdaanet.data.folds import class_names, fold_classes, novel_classes
from sdaanet.data.sources import DataNotFoundError, make_source
from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataNotFoundError",
    "EpisodeDataset",
    "EpisodeIndex",
    "EpisodeSampler",
    "EpisodicDataModule",
    "build_index",
    "build_transform",
    "class_names",
    "fold_classes",
    "make_source",
    "novel_classes",
]


def __getattr__(name: str):
    # the datamodule pulls in Lightning; import it only when asked for
    if name == "EpisodicDataModule":
        from sdaanet.data.datamodule import EpisodicDataModule

        return EpisodicDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
