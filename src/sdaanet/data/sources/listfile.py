"""Sources described by a list file of ``<image path> <label path>`` lines (PASCAL, COCO).

Paths are relative to the dataset root; a leading ``/`` is dropped (the authors' COCO lists start
with one and their loader strips the first character). Labels are PNGs of class ids.

The per-image class areas are computed once by reading every label and cached to a small JSON
next to the list file (``<list stem>.classes.json``), keyed by the list file's name, size and
mtime, so later runs start instantly. If the list folder is read-only the areas are recomputed.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sdaanet.data.sources.base import DataNotFoundError, Source, label_areas

CACHE_VERSION = 1


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H,W,3)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        if not Path(path).exists():
            raise DataNotFoundError(f"image not found: {path}")
        raise OSError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """Class-id map uint8 (H,W); palette PNGs give their indices, not their colours."""
    try:
        with Image.open(path) as im:
            label = np.array(im)
    except FileNotFoundError:
        raise DataNotFoundError(f"label not found: {path}") from None
    if label.ndim != 2:
        raise ValueError(f"label {path} must be a single-channel id map, got shape {label.shape}")
    return label.astype(np.uint8, copy=False)


def read_list(list_path: Path) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"{list_path}:{n}: expected '<image> <label>', got {line!r}")
        pairs.append((parts[0].lstrip("/"), parts[1].lstrip("/")))
    return pairs


class ListSource(Source):
    """Images and labels named by a list file under ``root``.

    Args:
        root: dataset root.
        list_file: list path, relative to ``root`` (or absolute).
        prepare_hint: the command that prepares this dataset (used in error messages).
        cache: read/write the class-area cache next to the list file.
        num_threads: threads that read labels when the cache is built.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        list_file: str | os.PathLike,
        *,
        prepare_hint: str = "",
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        self.root = Path(root).expanduser()
        self.list_path = Path(list_file)
        if not self.list_path.is_absolute():
            self.list_path = self.root / self.list_path
        self.prepare_hint = prepare_hint
        self.cache = cache
        self.num_threads = num_threads
        self.check()
        self.pairs = read_list(self.list_path)
        if not self.pairs:
            raise ValueError(f"list file {self.list_path} is empty")
        first = self.root / self.pairs[0][0]
        if not first.exists():
            self._missing(first)
        self._areas: list[dict[int, int]] | None = None

    # -- errors -----------------------------------------------------------------------------
    def _missing(self, path: Path) -> None:
        hint = f"; prepare it with: {self.prepare_hint}" if self.prepare_hint else ""
        raise DataNotFoundError(f"{self.name} data not found: {path} is missing{hint}")

    def check(self) -> None:
        """Raise ``DataNotFoundError`` (one line) if the root or the list file is missing."""
        if not self.root.is_dir():
            self._missing(self.root)
        if not self.list_path.is_file():
            self._missing(self.list_path)

    # -- Source -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pairs)

    def describe(self, i: int) -> str:
        return self.pairs[i][0]

    def paths(self, i: int) -> tuple[Path, Path]:
        image, label = self.pairs[i]
        return self.root / image, self.root / label

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.paths(i)
        image = read_image(image_path)
        label = read_label(label_path)
        if image.shape[:2] != label.shape:
            raise RuntimeError(
                f"image {image_path} {image.shape[:2]} and label {label_path} {label.shape} "
                "differ in size"
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
    @property
    def cache_path(self) -> Path:
        return self.list_path.with_name(self.list_path.stem + ".classes.json")

    def _cache_key(self) -> dict:
        st = self.list_path.stat()
        return {
            "version": CACHE_VERSION,
            "list": self.list_path.name,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }

    def _load_cache(self) -> list[dict[int, int]] | None:
        if not self.cache or not self.cache_path.is_file():
            return None
        try:
            data = json.loads(self.cache_path.read_text())
            if data.get("key") != self._cache_key() or len(data["areas"]) != len(self.pairs):
                return None
            return [{int(c): int(a) for c, a in entry.items()} for entry in data["areas"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _save_cache(self, areas: list[dict[int, int]]) -> None:
        if not self.cache:
            return
        data = {
            "key": self._cache_key(),
            "areas": [{str(c): a for c, a in e.items()} for e in areas],
        }
        tmp = self.cache_path.with_name(f"{self.cache_path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(tmp, self.cache_path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def _compute_areas(self) -> list[dict[int, int]]:
        def areas_of(i: int) -> dict[int, int]:
            return label_areas(read_label(self.paths(i)[1]))

        if self.num_threads <= 1 or len(self.pairs) < 64:
            return [areas_of(i) for i in range(len(self.pairs))]
        with ThreadPoolExecutor(self.num_threads) as pool:
            return list(pool.map(areas_of, range(len(self.pairs))))


def prepare_hint(name: str, root: str | os.PathLike) -> str:
    """The command that prepares dataset ``name`` under ``root``."""
    return f"sdaanet-data {name} --root {root}"


class SplitListSource(ListSource):
    """A ListSource whose list file defaults per split (``default_lists``, relative to root)."""

    default_lists: dict[str, str] = {}

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        list_file: str | None = None,
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        if list_file is None:
            if split not in self.default_lists:
                raise ValueError(
                    f"split must be one of {sorted(self.default_lists)}, got {split!r}"
                )
            list_file = self.default_lists[split]
        self.split = split
        super().__init__(
            root,
            list_file,
            prepare_hint=prepare_hint(self.name, root),
            cache=cache,
            num_threads=num_threads,
        )
