"""Overlays of a real-photo checkpoint on MSRC-v2 photos of its novel classes (docs/real-photos.md).

    python scripts/real_photos_overlays.py CKPT MSRC_ROOT OUT_DIR [--fold 0]

For each novel class of the fold: the support is the photo where the class covers the largest
share of the labelled pixels, the query the next one; writes `<class>_overlay.png` (prediction
in red) and prints each query's foreground IoU against its label (void ignored).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sdaanet.data.folds import MSRC_FOLDS
from sdaanet.data.sources.folder import read_classes
from sdaanet.io import read_image, read_label
from sdaanet.predict import load_predictor, save_outputs


def largest(root: Path, class_ids: list[int], n: int = 2) -> dict[int, list[str]]:
    """Per class, the n photo stems where it covers the largest share of the labelled pixels
    (every label read once)."""
    shares: dict[int, list[tuple[float, str]]] = {c: [] for c in class_ids}
    for path in sorted((root / "labels").glob("*.png")):
        label = read_label(path)
        labelled = max(int((label != 255).sum()), 1)
        for c in class_ids:
            shares[c].append((int((label == c).sum()) / labelled, path.stem))
    return {c: [stem for _, stem in sorted(s, reverse=True)[:n]] for c, s in shares.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("root", type=Path, help="the MSRC-v2 tree")
    parser.add_argument("out", type=Path)
    parser.add_argument("--fold", type=int, default=0)
    args = parser.parse_args()
    names = {v: k for k, v in read_classes(args.root / "classes.tsv").items()}
    predictor = load_predictor(args.ckpt)
    pairs = largest(args.root, [names[name] for name in MSRC_FOLDS[args.fold]])
    for name in MSRC_FOLDS[args.fold]:
        support, query = pairs[names[name]]
        label = read_label(args.root / "labels" / f"{support}.png")
        mask = np.where(label == 255, 255, label == names[name]).astype(np.uint8)
        image = read_image(args.root / "images" / f"{query}.jpg")
        pred = predictor.predict([(args.root / "images" / f"{support}.jpg", mask)], image)
        truth = read_label(args.root / "labels" / f"{query}.png")
        valid = truth != 255
        gt = (truth == names[name]) & valid
        iou = (gt & (pred == 1)).sum() / max(((gt | (pred == 1)) & valid).sum(), 1)
        save_outputs(image, pred, args.out, stem=name)
        (args.out / f"{name}_mask.png").unlink(missing_ok=True)
        print(f"{name}: support {support}, query {query}, foreground IoU {iou:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
