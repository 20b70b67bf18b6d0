"""``sdaanet-data folder`` / ``sdaanet-data fss1000``: datasets that need no conversion, checked.

Both read every label once (which also fills the class-area cache the datamodule reads), so a
missing file, an unreadable image or label, or a label value outside the class list is reported
now, naming the file, rather than mid-training. The report gives the images per class that can
serve as supports (area >= ``--min-area``) and, for folder datasets, the novel classes of every
fold under the chosen rule, so a user sees exactly what ``data=folder`` will train and test on.
"""

from __future__ import annotations

import argparse
from collections import Counter

from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.data.modules import FolderDataModule, FSS1000DataModule, MSRCDataModule
from sdaanet.data.prepare.common import Report
from sdaanet.errors import DataError, DataNotFoundError, PrepareError

SPLITS = {"folder": ("train", "val"), "msrc": ("train", "val"), "fss1000": ("train", "val", "test")}


def add_folder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-folds", type=int, default=4, help="folds (default 4)")
    parser.add_argument(
        "--fold-rule", default="contiguous", choices=("contiguous", "interleaved"),
        help="how the sorted class ids are dealt into folds (default contiguous)",
    )  # fmt: skip
    parser.add_argument("--min-area", type=int, default=2048, help="support pixels (default 2048)")


def add_msrc_arguments(parser: argparse.ArgumentParser) -> None:
    area = MSRCDataModule.MIN_AREA
    parser.add_argument("--min-area", type=int, default=area, help=f"support pixels ({area})")


def add_fss_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split-seed", type=int, default=0, help="class split seed when splits/ is absent"
    )
    parser.add_argument("--min-area", type=int, default=1, help="support pixels (default 1)")


def _usable_images(dm: EpisodicDataModule, split: str, min_area: int) -> Counter[int]:
    counts: Counter[int] = Counter()
    for areas in dm.make_source(split).class_areas():
        counts.update(c for c, a in areas.items() if a >= min_area)
    return counts


def _report(dm: EpisodicDataModule, args: argparse.Namespace, report: Report) -> None:
    names = dm.class_names
    counts: Counter[int] = Counter()
    for split in SPLITS[dm.name]:
        source = dm.make_source(split)
        if args.force and getattr(source, "cache_path", None) is not None:
            source.cache_path.unlink(missing_ok=True)
        split_counts = _usable_images(dm, split, args.min_area)
        report.info(f"{split}: {len(source)} images")
        counts.update({c: n for c, n in split_counts.items() if c not in counts})
    few = [f"{c} ({names[c]}): {counts[c]}" for c in names if counts[c] < 2]
    report.info(
        f"{len(names)} classes; images with >= {args.min_area} px per class: "
        + ", ".join(f"{names[c]} {counts[c]}" for c in names)
    )
    if few:
        report.warn(f"classes with fewer than 2 such images (no 1-shot episode): {', '.join(few)}")


def run_folder(args: argparse.Namespace, report: Report) -> None:
    dm = FolderDataModule(
        root=args.root, num_folds=args.num_folds, fold_rule=args.fold_rule, min_area=args.min_area
    )
    try:
        dm.check()
        for f, novel in enumerate(dm.folds()):
            report.info(f"fold {f} novel classes: " + ", ".join(dm.class_names[c] for c in novel))
        _report(dm, args, report)
    except (DataNotFoundError, DataError, ValueError) as err:
        raise PrepareError(str(err)) from None
    report.info(f"ok: train with data=folder data.root={args.root}")


def run_msrc(args: argparse.Namespace, report: Report) -> None:
    dm = MSRCDataModule(root=args.root, min_area=args.min_area)
    try:
        dm.check()
        names = dm.class_names
        for f, novel in enumerate(dm.folds()):
            report.info(f"fold {f} novel classes: " + ", ".join(names[c] for c in novel))
        report.info(
            "background (never a target): " + ", ".join(names[c] for c in dm.background_ids)
        )
        _report(dm, args, report)
    except (DataNotFoundError, DataError, ValueError) as err:
        raise PrepareError(str(err)) from None
    report.info(f"ok: train with data=msrc data.root={args.root}")


def run_fss(args: argparse.Namespace, report: Report) -> None:
    dm = FSS1000DataModule(root=args.root, source={"split_seed": args.split_seed})
    try:
        dm.check()
        source = dm.make_source("train")
        report.info(f"class split from {source.split_origin}")
        for split in SPLITS["fss1000"]:
            report.info(f"{split} classes: {len(dm.split_classes(split))}")
        _report(dm, args, report)
    except (DataNotFoundError, DataError, ValueError) as err:
        raise PrepareError(str(err)) from None
    report.info(f"ok: train with data=fss1000 data.root={args.root}")
