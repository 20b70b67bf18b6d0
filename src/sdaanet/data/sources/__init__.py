"""Sources: files (or a generator) -> (image uint8 HxWx3 RGB, label uint8 HxW class ids)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sdaanet.data.sources.base import DataNotFoundError, Source, label_areas
from sdaanet.data.sources.coco import COCO_LISTS, CocoSource
from sdaanet.data.sources.listfile import ListSource, prepare_hint
from sdaanet.data.sources.pascal import PASCAL_LISTS, PascalSource
from sdaanet.data.sources.synthetic import SyntheticSource

SOURCES = {"synthetic": SyntheticSource, "pascal": PascalSource, "coco": CocoSource}
_LISTS = {"pascal": PASCAL_LISTS, "coco": COCO_LISTS}


def make_source(name: str, root: str | os.PathLike | None, split: str, **options: Any) -> Source:
    """Build the ``split`` source of dataset ``name`` from a data config's ``source`` options.

    synthetic: ``seed``, ``image_size``, ``num_train``, ``num_val``, ``void_width``,
    ``distractor_probs`` (``root`` unused). pascal/coco: ``train_list``, ``val_list`` (paths
    relative to ``root``), ``cache``, ``num_threads``.
    """
    options = dict(options)
    if name == "synthetic":
        num = {"train": options.pop("num_train", None), "val": options.pop("num_val", None)}
        num["test"] = num["val"]
        if "distractor_probs" in options:
            options["distractor_probs"] = tuple(options["distractor_probs"])
        return SyntheticSource(split=split, num_images=num.get(split), **options)
    if name in _LISTS:
        if root is None:
            raise ValueError(f"data.root must be set for {name}")
        lists = {"train": options.pop("train_list", None), "val": options.pop("val_list", None)}
        split = "val" if split == "test" else split
        return SOURCES[name](root, split=split, list_file=lists[split], **options)
    raise ValueError(f"unknown data source {name!r}; expected one of {sorted(SOURCES)}")


def check_source(
    name: str, root: str | os.PathLike | None, splits: tuple[str, ...], **options: Any
) -> None:
    """Fast existence check (no file is read): raise a one-line ``DataNotFoundError``."""
    if name == "synthetic":
        return
    if name not in _LISTS:
        raise ValueError(f"unknown data source {name!r}; expected one of {sorted(SOURCES)}")
    if root is None:
        raise ValueError(f"data.root must be set for {name}")
    defaults = _LISTS[name]
    root_path = Path(root).expanduser()
    missing = None
    if not root_path.is_dir():
        missing = root_path
    else:
        for split in splits:
            split = "val" if split == "test" else split
            rel = options.get(f"{split}_list") or defaults[split]
            path = Path(rel) if Path(rel).is_absolute() else root_path / rel
            if not path.is_file():
                missing = path
                break
    if missing is not None:
        raise DataNotFoundError(
            f"{name} data not found: {missing} is missing; "
            f"prepare it with: {prepare_hint(name, root)}"
        )


__all__ = [
    "SOURCES",
    "CocoSource",
    "DataNotFoundError",
    "ListSource",
    "PascalSource",
    "Source",
    "SyntheticSource",
    "check_source",
    "label_areas",
    "make_source",
]
