"""What every source provides: files -> (image, label) and which classes each image holds."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np


class DataNotFoundError(FileNotFoundError):
    """A dataset root or one of its required files is missing.

    ``str(err)`` is a single line naming the missing path and the command that prepares it.
    """


class DataError(ValueError):
    """A dataset file exists but is unusable (corrupt, wrong size, unknown label values).

    ``str(err)`` is a single line naming the file and the problem.
    """


class DataConfigError(ValueError):
    """The data config asks for something the dataset cannot give (a fold out of range, an
    unknown transform recipe, ``ways`` larger than the classes). One line."""


def one_line(exc: BaseException) -> str:
    """A user-facing line for ``exc``: the last line of its message, without a ``module.Type: ``
    prefix (errors re-raised from DataLoader workers carry the worker's traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    last = lines[-1]
    head, sep, rest = last.partition(": ")
    return rest if sep and "." in head and " " not in head else last


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
