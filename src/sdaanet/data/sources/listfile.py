"""Sources made of (image file, label file) pairs under a root: list files (PASCAL, COCO) and
folder trees (user datasets, FSS-1000).

Every pair is checked to exist when the source is built: missing files are one error that gives
their count and the first few paths, never a silent skip. The per-image class areas are computed
once by reading every label (validating its values against the dataset's class ids) and cached to
a small JSON (``<list stem>.classes.json`` next to a list file), keyed by the pairs and the label
files' sizes and mtimes, so later runs start instantly. If the cache folder is read-only the areas
are recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from sdaanet.data.sources.base import Source, check_label_ids, label_areas
from sdaanet.errors import DataError, DataNotFoundError
from sdaanet.io import atomic_write, read_image, read_label

CACHE_VERSION = 2
SHOW_MISSING = 3


def missing_files(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if not p.is_file()]


def missing_error(missing: Sequence[Path], total: int, what: str, hint: str) -> DataNotFoundError:
    """One line: how many of ``total`` files named by ``what`` are missing, and the first few."""
    first = ", ".join(str(p) for p in missing[:SHOW_MISSING])
    more = ", ..." if len(missing) > SHOW_MISSING else ""
    fix = f"; {hint}" if hint else ""
    return DataNotFoundError(
        f"{len(missing)} of {total} files named by {what} are missing: {first}{more}{fix}"
    )


class PairSource(Source):
    """(image, label) file pairs under ``root``, with validated labels and cached class areas.

    Args:
        root: dataset root.
        pairs: (image, label) paths relative to ``root``.
        valid_ids: class ids a label may hold besides 0 and 255.
        what: the origin of the pairs, for error messages (a list file, a folder).
        prepare_hint: the command that prepares this dataset (used in error messages).
        cache_path: where the class areas are cached (None: never cached).
        num_threads: threads that read labels when the cache is built.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        pairs: Sequence[tuple[str, str]],
        valid_ids: Iterable[int],
        *,
        what: str,
        prepare_hint: str = "",
        cache_path: Path | None = None,
        num_threads: int = 8,
    ) -> None:
        self.root = Path(root).expanduser()
        self.pairs = list(pairs)
        self.valid_ids = frozenset({0, 255, *(int(c) for c in valid_ids)})
        self.what = what
        self.prepare_hint = prepare_hint
        self.cache_path = cache_path
        self.num_threads = num_threads
        if not self.pairs:
            raise DataError(f"{what} names no image")
        files = [self.root / f for pair in self.pairs for f in pair]
        missing = missing_files(files)
        if missing:
            hint = f"prepare the data with: {prepare_hint}" if prepare_hint else ""
            raise missing_error(missing, len(files), what, hint)
        self._areas: list[dict[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def describe(self, i: int) -> str:
        return self.pairs[i][0]

    def paths(self, i: int) -> tuple[Path, Path]:
        image, label = self.pairs[i]
        return self.root / image, self.root / label

    def read_label(self, path: Path) -> np.ndarray:
        """The class-id map of a label file (subclasses convert other formats here)."""
        return read_label(path)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.paths(i)
        image = read_image(image_path)
        label = self.read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DataError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                f"{label_path} is {label.shape[1]}x{label.shape[0]}; they must be the same size"
            )
        return image, label

    def class_areas(self) -> list[dict[int, int]]:
        if self._areas is None:
            self._areas = self._load_cache()
            if self._areas is None:
                self._areas = self._compute_areas()
                self._save_cache(self._areas)
        return self._areas

    # -- cache ------------------------------------------------------------------------------
    def _cache_key(self) -> str:
        fingerprint = hashlib.sha256(f"{CACHE_VERSION} {sorted(self.valid_ids)}".encode())
        for _, label in self.pairs:
            st = (self.root / label).stat()
            fingerprint.update(f"{label} {st.st_size} {st.st_mtime_ns}\n".encode())
        return fingerprint.hexdigest()

    def _load_cache(self) -> list[dict[int, int]] | None:
        if self.cache_path is None or not self.cache_path.is_file():
            return None
        try:
            data = json.loads(self.cache_path.read_text())
            if data.get("key") != self._cache_key() or len(data["areas"]) != len(self.pairs):
                return None
            return [{int(c): int(a) for c, a in entry.items()} for entry in data["areas"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _save_cache(self, areas: list[dict[int, int]]) -> None:
        if self.cache_path is None:
            return
        data = {
            "key": self._cache_key(),
            "areas": [{str(c): a for c, a in e.items()} for e in areas],
        }
        with contextlib.suppress(OSError):  # a read-only cache folder: recomputed next time
            atomic_write(self.cache_path, json.dumps(data, separators=(",", ":")))

    def _compute_areas(self) -> list[dict[int, int]]:
        def areas_of(i: int) -> dict[int, int]:
            path = self.paths(i)[1]
            areas = label_areas(self.read_label(path))
            check_label_ids(areas, self.valid_ids, str(path))
            return areas

        if self.num_threads <= 1 or len(self.pairs) < 64:
            return [areas_of(i) for i in range(len(self.pairs))]
        with ThreadPoolExecutor(self.num_threads) as pool:
            return list(pool.map(areas_of, range(len(self.pairs))))


def user_cache_dir(root: Path) -> Path:
    """A per-dataset cache folder outside the dataset: ``$SDAANET_CACHE`` (default
    ``~/.cache/sdaanet``) / a hash of the dataset's absolute path."""
    base = Path(os.environ.get("SDAANET_CACHE", "~/.cache/sdaanet")).expanduser()
    return base / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def read_list(list_path: Path) -> list[tuple[str, str]]:
    """``<image> <label>`` lines; a leading ``/`` is dropped (the authors' COCO lists)."""
    pairs = []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{list_path}:{n}: expected '<image> <label>', got {line!r}")
        pairs.append((parts[0].lstrip("/"), parts[1].lstrip("/")))
    return pairs


def prepare_hint(name: str, root: str | os.PathLike) -> str:
    """The command that prepares dataset ``name`` under ``root``."""
    return f"sdaanet-data {name} --root {root}"


class SplitListSource(PairSource):
    """A dataset split named by a list file under ``root`` (default ``default_lists[split]``)."""

    default_lists: dict[str, str] = {}
    num_classes: int = 0
    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        list_file: str | os.PathLike | None = None,
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        if split not in self.default_lists:
            raise ValueError(f"split must be one of {sorted(self.default_lists)}, got {split!r}")
        self.split = split
        root = Path(root).expanduser()
        hint = prepare_hint(self.name, root)
        list_path = self.checked_list(root, split, list_file)
        super().__init__(
            root,
            read_list(list_path),
            range(1, self.num_classes + 1),
            what=f"list {list_path}",
            prepare_hint=hint,
            cache_path=list_path.with_name(list_path.stem + ".classes.json") if cache else None,
            num_threads=num_threads,
        )
        self.list_path = list_path

    @classmethod
    def checked_list(
        cls, root: Path, split: str, list_file: str | os.PathLike | None = None
    ) -> Path:
        """The list file of ``split`` (default ``default_lists``); a one-line
        ``DataNotFoundError`` naming the prepare command if it or ``root`` is missing."""
        list_path = Path(list_file or cls.default_lists[split])
        list_path = list_path if list_path.is_absolute() else root / list_path
        for path in (root, list_path):
            if not path.exists():
                raise DataNotFoundError(
                    f"{cls.name} data not found: {path} is missing; "
                    f"prepare it with: {prepare_hint(cls.name, root)}"
                )
        return list_path
