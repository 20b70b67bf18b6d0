"""User datasets in a folder: the way to bring your own data.

Layout under ``root``::

    images/<name>.jpg          RGB photos (.jpg, .jpeg or .png; grayscale/RGBA are converted)
    labels/<name>.png          single-channel class-id maps: 0 background, ids of classes.tsv,
                               255 ignore; same size as the image
    classes.tsv                one "<id><TAB><name>" line per class (ids 1-254, an optional
                               "id<TAB>name" header line)
    splits/train.txt           optional: the <name>s used for training episodes, one per line
    splits/val.txt             optional: the <name>s used for validation/test episodes

Without ``splits/`` every image serves both splits: training episodes only ever target the fold's
base classes and evaluation episodes its novel classes, so a picture is used for the classes each
split owns (novel-class pixels are background in training, as in PASCAL-5i). ``sdaanet-data
folder --root <root>`` checks the tree and prints the classes and folds.
"""

from __future__ import annotations

import os
from pathlib import Path

from sdaanet.data.sources.listfile import PairSource, prepare_hint, user_cache_dir
from sdaanet.errors import DataError, DataNotFoundError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LAYOUT = "images/<name>.jpg + labels/<name>.png + classes.tsv"


def read_classes(path: Path) -> dict[int, str]:
    """``classes.tsv`` -> {id: name}, validated (ids unique, 1-254)."""
    classes: dict[int, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split(maxsplit=1)
        if n == 1 and parts[0].strip().lower() == "id":
            continue
        try:
            cid = int(parts[0])
        except ValueError:
            raise DataError(f"{path}:{n}: expected '<id><TAB><name>', got {line!r}") from None
        if not 1 <= cid <= 254:
            raise DataError(f"{path}:{n}: class id {cid} must be in 1-254 (0 = bg, 255 = ignore)")
        if cid in classes:
            raise DataError(f"{path}:{n}: class id {cid} appears twice")
        classes[cid] = parts[1].strip() if len(parts) > 1 and parts[1].strip() else str(cid)
    if not classes:
        raise DataError(f"{path} lists no class")
    return dict(sorted(classes.items()))


def check_folder(root: Path) -> None:
    """Raise a one-line ``DataNotFoundError`` naming the layout if the tree is incomplete."""
    for path in (root, root / "images", root / "labels", root / "classes.tsv"):
        if not path.exists():
            raise DataNotFoundError(
                f"folder dataset not found: {path} is missing; a folder dataset is {LAYOUT} "
                f"(docs/data.md, 'Your own data'); check it with: {prepare_hint('folder', root)}"
            )


def folder_pairs(root: Path, split: str) -> tuple[list[tuple[str, str]], str]:
    """The (image, label) pairs of ``split`` and where they came from (for messages)."""
    names_file = root / "splits" / f"{'val' if split == 'test' else split}.txt"
    if names_file.is_file():
        names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
        images = {}
        for name in names:
            found = [root / "images" / f"{name}{s}" for s in IMAGE_SUFFIXES]
            images[name] = next((p for p in found if p.is_file()), found[0])
        what = f"split file {names_file}"
    else:
        images = {
            p.stem: p
            for p in sorted((root / "images").iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES
        }
        what = f"folder {root / 'images'}"
        unlabelled = [p for n, p in images.items() if not (root / "labels" / f"{n}.png").is_file()]
        if unlabelled:
            first = ", ".join(p.name for p in unlabelled[:3])
            raise DataNotFoundError(
                f"{len(unlabelled)} of {len(images)} images in {root / 'images'} have no "
                f"labels/<name>.png: {first}{', ...' if len(unlabelled) > 3 else ''}"
            )
    pairs = [(os.path.relpath(p, root), f"labels/{name}.png") for name, p in images.items()]
    return pairs, what


class FolderSource(PairSource):
    """One split of a folder dataset (module docstring).

    Args:
        root: the dataset folder.
        split: "train", "val" or "test" ("test" reads ``splits/val.txt``).
        cache: cache the class areas in ``listfile.user_cache_dir`` (never inside ``root``).
        num_threads: threads that read labels when the cache is built.
    """

    name = "folder"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        cache: bool = True,
        num_threads: int = 8,
    ) -> None:
        root = Path(root).expanduser()
        check_folder(root)
        self.classes = read_classes(root / "classes.tsv")
        self.split = split
        pairs, what = folder_pairs(root, split)
        super().__init__(
            root,
            pairs,
            self.classes,
            what=what,
            prepare_hint=prepare_hint("folder", root),
            cache_path=user_cache_dir(root) / f"folder-{split}.classes.json" if cache else None,
            num_threads=num_threads,
        )
