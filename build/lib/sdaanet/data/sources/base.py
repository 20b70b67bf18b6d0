"""What every source provides: files -> (image, label) and which classes each image holds."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

from sdaanet.errors import DataError


class Source(abc.ABC):
    """A list of (image, label) pairs of one split.

    ``load(i)`` returns ``image`` uint8 (H,W,3) RGB and ``label`` uint8 (H,W) with dataset-global
    class ids (0 background, 255 void). ``class_areas()`` gives, for every image, the pixel count
    of each class id it holds (0 and 255 excluded) at the original resolution; it must be cheap
    (cached or analytic) since the episode index is built from it.
    """

    name: str = "source"

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abc.abstractmethod
    def class_areas(self) -> list[dict[int, int]]: ...

    def describe(self, i: int) -> str:
        """A short human-readable id of image ``i`` (for error messages)."""
        return f"{self.name}[{i}]"


def label_areas(label: np.ndarray) -> dict[int, int]:
    """Pixel count of every class id in ``label`` (0 and 255 excluded)."""
    counts = np.bincount(label.ravel(), minlength=256)
    counts[0] = 0
    counts[255] = 0
    return {int(c): int(counts[c]) for c in np.flatnonzero(counts)}


def check_label_ids(areas: dict[int, int], valid: Iterable[int], where: str) -> None:
    """Raise ``DataError`` naming ``where`` if ``areas`` holds an id outside ``valid``."""
    bad = sorted(set(areas) - set(valid))
    if bad:
        raise DataError(
            f"label {where} holds values {bad} that are not class ids of this dataset "
            "(expected 0 = background, the ids of the class list, 255 = ignore)"
        )
