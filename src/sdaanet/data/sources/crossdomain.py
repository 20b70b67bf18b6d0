"""PATNet's cross-domain benchmark (Lei et al., ECCV 2022): Deepglobe, ISIC 2018, Chest X-ray and
FSS-1000, listed exactly as PATNet's loaders list them (slei109/PATNet 0155c5f, HSNet's
``fss.py`` for FSS-1000). Test sets only: a model trained on PASCAL is evaluated on them.

Layout under ``root`` (PATNet's ``--datapath``)::

    Deepglobe/<c>/test/origin/<id>.jpg                  c = 1..6, 408x408 tiles
    Deepglobe/<c>/test/groundtruth/<id>.png
    ISIC/ISIC2018_Task1-2_Training_Input/<c>/<id>.jpg   c = 1..3
    ISIC/ISIC2018_Task1_Training_GroundTruth/<id>_segmentation.png   (flat)
    LungSegmentation/masks/<name>_mask.png              one class
    LungSegmentation/CXR_png/<name>.png                 the image of a mask: its name[:-9]
    FSS-1000/<class>/<n>.jpg + <n>.png                  the classes of FSS-1000/splits/test.txt

Rules (PATNet's code):

- A folder's files are listed in sorted order and kept only if ``name.split('.')[1]`` is the
  extension (``jpg``; ``png`` for the Chest X-ray masks), so ``img.v2.jpg`` (``'v2'``) and
  ``a.JPG`` are left out, while ``a.jpg.bak`` would be kept; the id is ``name.split('.')[0]``.
  Hidden files and sub-folders are skipped. ``Listing.left_out`` names the dropped files that
  end in the extension, so ``sdaanet-data`` can report them.
- Chest X-ray lists the masks; a mask's image is ``CXR_png/<mask name minus 9 chars>.png``
  (the 9 characters of ``_mask.png``).
- FSS-1000: every kept ``<n>.jpg`` of the split's classes (sorted) is an image; supports come
  only from ``1.jpg``..``10.jpg`` (``Listing.supports``), which must exist.
- A mask is converted to grey (``L``) and ``>= 128`` is foreground; there is no ignore label.
  The label of an image of class id ``c`` is ``(mask >= 128) * c``.
- Class ids are 1..C in folder order; FSS-1000's are the sorted test classes.

Every listed file must exist (``PairSource``: one error naming the count and the first missing
paths, masks included); image and mask must have the same size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdaanet.data.sources.fss1000 import read_mask
from sdaanet.data.sources.listfile import PairSource, prepare_hint, user_cache_dir
from sdaanet.errors import DataError, DataNotFoundError

FOREGROUND = 128  # grey >= 128 is foreground (PATNet's read_mask)
SHOW = 3

DEEPGLOBE_DIR = "Deepglobe"
# Folder c is PATNet's preprocessing label c-1 (data/preprocess.py's labelset, read as BGR by
# cv2): derived from the script, not checked on the released tiles.
DEEPGLOBE_CLASSES = ("agriculture", "urban", "rangeland", "forest", "water", "barren")
ISIC_DIR = "ISIC"
ISIC_IMAGES = "ISIC/ISIC2018_Task1-2_Training_Input"
ISIC_MASKS = "ISIC/ISIC2018_Task1_Training_GroundTruth"
ISIC_CLASSES = ("1", "2", "3")  # which diagnosis each folder holds is not stated in PATNet
CHEST_DIR = "LungSegmentation"
CHEST_IMAGES = "LungSegmentation/CXR_png"
CHEST_MASKS = "LungSegmentation/masks"
FSS_DIR = "FSS-1000"
FSS_SPLIT = "FSS-1000/splits/test.txt"
FSS_SUPPORTS = tuple(f"{n}.jpg" for n in range(1, 11))

LAYOUTS = {
    "deepglobe": "Deepglobe/<1..6>/test/origin/<id>.jpg + Deepglobe/<c>/test/groundtruth/<id>.png",
    "isic": f"{ISIC_IMAGES}/<1..3>/<id>.jpg + {ISIC_MASKS}/<id>_segmentation.png",
    "chest_xray": f"{CHEST_MASKS}/<name>_mask.png + {CHEST_IMAGES}/<name>.png",
    "fss1000_patnet": f"{FSS_DIR}/<class>/<n>.jpg + <n>.png, classes from {FSS_SPLIT}",
}


@dataclass(frozen=True)
class Listing:
    """The (image, mask) pairs of a dataset (relative to its root) and the class id of each."""

    pairs: tuple[tuple[str, str], ...]
    classes: tuple[int, ...]
    class_names: dict[int, str]
    left_out: tuple[str, ...] = ()  # files ending in the extension that the name rule drops
    supports: tuple[int, ...] | None = None  # pairs that may be supports (None: every pair)

    def counts(self) -> dict[int, int]:
        """Images per class id."""
        return {c: self.classes.count(c) for c in self.class_names}


def kept(name: str, ext: str) -> bool:
    """PATNet's file rule: ``name.split('.')[1] == ext`` (a name without a dot is dropped)."""
    parts = name.split(".")
    return len(parts) > 1 and parts[1] == ext


def file_id(name: str) -> str:
    """PATNet's id of a file: ``name.split('.')[0]``."""
    return name.split(".")[0]


def _folder(root: Path, rel: str, dataset: str) -> Path:
    path = root / rel
    if not path.is_dir():
        raise DataNotFoundError(
            f"{dataset} data not found: {path} is missing; {dataset} is {LAYOUTS[dataset]} under "
            f"data.root (docs/data.md, 'Cross-domain benchmark'); check it with: "
            f"{prepare_hint(dataset, root)}"
        )
    return path


def listed(folder: Path, ext: str, rel: str) -> tuple[list[str], list[str]]:
    """The names of ``folder`` PATNet keeps (sorted) and the ``rel/<name>`` of the files ending
    in ``.ext`` (any case) that its rule drops."""
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    keep = [n for n in names if kept(n, ext)]
    dropped = [f"{rel}/{n}" for n in names if n.lower().endswith(f".{ext}") and not kept(n, ext)]
    return keep, dropped


def _class_folders(
    root: Path, dataset: str, names: Sequence[str], image_dir: Callable[[int], str],
    mask_of: Callable[[int, str], str],
) -> Listing:  # fmt: skip
    """The pairs of one image folder per class (class c = 1..len(names), `image_dir(c)`), each
    image's mask at `mask_of(c, id)`."""
    pairs, classes, left_out = [], [], []
    for c in range(1, len(names) + 1):
        rel = image_dir(c)
        kept_names, dropped = listed(_folder(root, rel, dataset), "jpg", rel)
        pairs += [(f"{rel}/{n}", mask_of(c, file_id(n))) for n in kept_names]
        classes += [c] * len(kept_names)
        left_out += dropped
    return Listing(tuple(pairs), tuple(classes), dict(enumerate(names, 1)), tuple(left_out))


def deepglobe_listing(root: Path) -> Listing:
    """``Deepglobe/<c>/test/origin/<id>.jpg`` + ``.../groundtruth/<id>.png``, c = 1..6."""
    _folder(root, DEEPGLOBE_DIR, "deepglobe")
    return _class_folders(
        root, "deepglobe", DEEPGLOBE_CLASSES,
        lambda c: f"{DEEPGLOBE_DIR}/{c}/test/origin",
        lambda c, i: f"{DEEPGLOBE_DIR}/{c}/test/groundtruth/{i}.png",
    )  # fmt: skip


def isic_listing(root: Path) -> Listing:
    """``ISIC2018_Task1-2_Training_Input/<c>/<id>.jpg`` + flat ``<id>_segmentation.png``."""
    _folder(root, ISIC_DIR, "isic")
    return _class_folders(
        root, "isic", ISIC_CLASSES, lambda c: f"{ISIC_IMAGES}/{c}",
        lambda c, i: f"{ISIC_MASKS}/{i}_segmentation.png",
    )  # fmt: skip


def chest_listing(root: Path) -> Listing:
    """``LungSegmentation/masks/*.png`` and, per mask, ``CXR_png/<name[:-9]>.png``."""
    _folder(root, CHEST_DIR, "chest_xray")
    names, dropped = listed(_folder(root, CHEST_MASKS, "chest_xray"), "png", CHEST_MASKS)
    pairs = tuple((f"{CHEST_IMAGES}/{n[:-9]}.png", f"{CHEST_MASKS}/{n}") for n in names)
    return Listing(pairs, (1,) * len(pairs), {1: "lung"}, tuple(dropped))


def fss_test_classes(root: Path, split_file: str | os.PathLike | None = None) -> list[str]:
    """The sorted class names of the FSS-1000 test split (default ``FSS-1000/splits/test.txt``,
    HSNet's ``data/splits/fss/test.txt``), each with its folder."""
    base = _folder(root, FSS_DIR, "fss1000_patnet")
    path = Path(split_file or FSS_SPLIT).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise DataNotFoundError(
            f"FSS-1000 test split not found: {path} is missing; copy HSNet's "
            "data/splits/fss/test.txt (the 240 test classes) there, or name another file "
            "(data.source.split_file=<file>; sdaanet-data: --split-file)"
        )
    names = sorted({n.strip() for n in path.read_text().splitlines() if n.strip()})
    if not names:
        raise DataError(f"FSS-1000 test split {path} lists no class")
    absent = [n for n in names if not (base / n).is_dir()]
    if absent:
        raise DataNotFoundError(
            f"{len(absent)} classes named by {path} have no folder in {base}: "
            f"{', '.join(absent[:SHOW])}{', ...' if len(absent) > SHOW else ''}"
        )
    return names


def fss_listing(root: Path, split_file: str | os.PathLike | None = None) -> Listing:
    """Every kept ``<n>.jpg`` of the test classes (with ``1..10.jpg``, which must exist) and
    ``<n>.png`` beside it; supports only ``1..10.jpg``."""
    pairs, classes, left_out, supports = [], [], [], []
    names = fss_test_classes(root, split_file)
    for c, cname in enumerate(names, 1):
        rel = f"{FSS_DIR}/{cname}"
        found, dropped = listed(root / rel, "jpg", rel)
        for n in sorted({*found, *FSS_SUPPORTS}):
            if n in FSS_SUPPORTS:
                supports.append(len(pairs))
            pairs.append((f"{rel}/{n}", f"{rel}/{file_id(n)}.png"))
            classes.append(c)
        left_out += dropped
    by_id = dict(enumerate(names, 1))
    return Listing(tuple(pairs), tuple(classes), by_id, tuple(left_out), tuple(supports))


def listing(
    dataset: str, root: str | os.PathLike, split_file: str | os.PathLike | None = None
) -> Listing:
    """The listing of ``dataset`` (``deepglobe``, ``isic``, ``chest_xray``, ``fss1000_patnet``)
    under ``root``; a one-line ``DataNotFoundError`` naming the layout if a folder is missing."""
    root = Path(root).expanduser()
    if dataset == "fss1000_patnet":
        return fss_listing(root, split_file)
    listers = {"deepglobe": deepglobe_listing, "isic": isic_listing, "chest_xray": chest_listing}
    if dataset not in listers:
        raise ValueError(f"dataset must be one of {sorted(LAYOUTS)}, got {dataset!r}")
    return listers[dataset](root)


def binary_label(path: Path, class_id: int) -> np.ndarray:
    """``(grey mask >= 128) * class_id`` as uint8."""
    return ((read_mask(path) >= FOREGROUND) * class_id).astype(np.uint8)


class CrossDomainSource(PairSource):
    """The images of one cross-domain dataset (module docstring), from its ``Listing``."""

    def __init__(
        self,
        root: str | os.PathLike,
        name: str,
        items: Listing,
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        self.name = name
        self.listing = items
        root = Path(root).expanduser()
        self._label_class = label_classes(items.pairs, items.classes)
        super().__init__(
            root,
            items.pairs,
            items.class_names,
            what=f"{name} ({LAYOUTS[name]}) in {root}",
            prepare_hint=prepare_hint(name, root),
            cache_path=user_cache_dir(root) / f"{name}.classes.json" if cache else None,
            num_threads=num_threads,
        )

    def read_label(self, path: Path) -> np.ndarray:
        return binary_label(path, self._label_class[path.relative_to(self.root).as_posix()])


def label_classes(pairs: Sequence[tuple[str, str]], classes: Sequence[int]) -> dict[str, int]:
    """mask path -> class id; a mask shared by images of two classes is a ``DataError``."""
    out: dict[str, int] = {}
    first: dict[str, str] = {}
    for (image, mask), c in zip(pairs, classes, strict=True):
        if out.setdefault(mask, c) != c:
            raise DataError(
                f"mask {mask} belongs to {first[mask]} and {image}, which are in different class "
                "folders; an image may be in one class folder only"
            )
        first.setdefault(mask, image)
    return out
