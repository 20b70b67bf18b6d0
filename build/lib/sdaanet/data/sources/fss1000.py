"""FSS-1000 (Li et al., CVPR 2020): 1000 classes, 10 images each, binary masks.

Layout under ``root`` (the released ``fewshot_data``)::

    <class name>/<n>.jpg       RGB image
    <class name>/<n>.png       mask, foreground > 127 (0/255 PNG)
    splits/trn.txt, splits/val.txt, splits/test.txt    optional: class names per split

Class ids are 1..C in sorted order of the class folder names, so a label is ``mask * id``. The
standard split (HSNet's ``trn/val/test.txt``, 520/240/240 classes) is used when ``splits/`` holds
it; otherwise ``seeded_split`` draws one with the same proportions from ``split_seed`` and says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sdaanet.data.sources.listfile import PairSource, user_cache_dir
from sdaanet.errors import DataNotFoundError
from sdaanet.io import open_image

SPLIT_FILES = {"train": "trn.txt", "val": "val.txt", "test": "test.txt"}
STANDARD_SIZES = (520, 240, 240)
LAYOUT = "<class>/<n>.jpg + <class>/<n>.png per class folder"


def class_folders(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataNotFoundError(
            f"fss1000 data not found: {root} is missing; FSS-1000 is {LAYOUT} "
            "(download fewshot_data.zip and unpack it there)"
        )
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in ("splits",))
    names = [n for n in names if not n.startswith(".")]
    if not names:
        raise DataNotFoundError(f"fss1000 data not found: {root} holds no class folder ({LAYOUT})")
    return names


def seeded_split(names: list[str], seed: int) -> dict[str, list[str]]:
    """A class split with the standard 520/240/240 proportions, drawn from ``seed``."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_train = round(len(names) * STANDARD_SIZES[0] / 1000)
    n_val = round(len(names) * STANDARD_SIZES[1] / 1000)
    shuffled = [names[i] for i in order]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def class_split(root: Path, seed: int = 0) -> tuple[dict[str, list[str]], str]:
    """Class names per split and where the split came from ("splits/" or "seed <n>")."""
    names = class_folders(root)
    files = {s: root / "splits" / f for s, f in SPLIT_FILES.items()}
    if not all(p.is_file() for p in files.values()):
        return seeded_split(names, seed), f"seed {seed}"
    known = set(names)
    split = {}
    for s, path in files.items():
        listed = [n.strip() for n in path.read_text().splitlines() if n.strip()]
        unknown = [n for n in listed if n not in known]
        if unknown:
            raise DataNotFoundError(
                f"{len(unknown)} classes named by {path} have no folder in {root}: "
                f"{', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}"
            )
        split[s] = listed
    return split, str(root / "splits")


class FSS1000Source(PairSource):
    """The images of one split's classes (module docstring)."""

    name = "fss1000"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        split_seed: int = 0,
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        if split not in SPLIT_FILES:
            raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
        root = Path(root).expanduser()
        names = class_folders(root)
        self.class_ids = {n: i for i, n in enumerate(names, 1)}
        splits, self.split_origin = class_split(root, split_seed)
        self.split = split
        self.split_classes = sorted(self.class_ids[n] for n in splits[split])
        self._label_class: dict[str, int] = {}
        pairs = []
        for cname in splits[split]:
            for image in sorted((root / cname).glob("*.jpg")):
                label = f"{cname}/{image.stem}.png"
                pairs.append((f"{cname}/{image.name}", label))
                self._label_class[label] = self.class_ids[cname]
        super().__init__(
            root,
            pairs,
            self.class_ids.values(),
            what=f"FSS-1000 {split} classes in {root}",
            cache_path=(
                user_cache_dir(root) / f"fss1000-{split}-{split_seed}.classes.json"
                if cache
                else None
            ),
            num_threads=num_threads,
        )

    def read_label(self, path: Path) -> np.ndarray:
        cid = self._label_class[path.relative_to(self.root).as_posix()]
        return ((read_mask(path) > 127) * cid).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """A mask as uint8 luminance (RGB masks, which some FSS-1000 classes have, are converted)."""
    return np.array(open_image(path, f"mask {path}").convert("L"))
