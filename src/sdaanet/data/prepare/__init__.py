"""``sdaanet-data``: check a dataset tree, build its label PNGs and write the list files.

    sdaanet-data pascal --root data/pascal --sbd SBD/benchmark_RELEASE/dataset
    sdaanet-data coco --root data/coco --workers 8
    sdaanet-data fss1000 --root data/fss1000
    sdaanet-data folder --root path/to/my_dataset
    sdaanet-data msrc --root path/to/msrc-v2
    sdaanet-data deepglobe --root path/to/datapath     # also isic, chest_xray, fss1000_patnet

One subcommand per dataset (``COMMANDS``); every subcommand takes ``--root`` (the dataset root)
and ``--force`` (rewrite existing lists and labels). The rules of each are in its module's
docstring and in ``docs/data.md``. Errors are one line on stderr (``error: ...``) and exit
code 2 (`sdaanet.cli`); warnings go to stderr too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from sdaanet.cli import entry_point
from sdaanet.data.prepare import check, coco, crossdomain, pascal
from sdaanet.data.prepare.common import Report

__all__ = ["COMMANDS", "Command", "Report", "main"]


class Command(NamedTuple):
    """A subcommand: its help line, its own flags, and what it does with the parsed args."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Report], None]


COMMANDS: dict[str, Command] = {
    "pascal": Command(
        "PASCAL-5i: VOC2012 + SBD -> SegmentationClassAug/ and lists/pascal/",
        pascal.add_arguments,
        pascal.run,
    ),
    "coco": Command(
        "COCO-20i: COCO 2014 instances json -> annotations/<split>2014/*.png and lists/coco/",
        coco.add_arguments,
        coco.run,
    ),
    "fss1000": Command(
        "FSS-1000: check the class folders and the class split (no conversion needed)",
        check.add_fss_arguments,
        check.run_fss,
    ),
    "folder": Command(
        "your own data: check images/ labels/ classes.tsv and print the folds",
        check.add_folder_arguments,
        check.run_folder,
    ),
    "msrc": Command(
        "MSRC-v2 (object-level labels): check images/ labels/ classes.tsv and print the folds",
        check.add_msrc_arguments,
        check.run_msrc,
    ),
    "deepglobe": Command(
        "cross-domain test set: check Deepglobe/<1..6>/test/{origin,groundtruth} (PATNet's tiles)",
        crossdomain.add_arguments,
        crossdomain.make_run("deepglobe"),
    ),
    "isic": Command(
        "cross-domain test set: check ISIC/ISIC2018_Task1-2_Training_Input/<1..3> + GroundTruth",
        crossdomain.add_arguments,
        crossdomain.make_run("isic"),
    ),
    "chest_xray": Command(
        "cross-domain test set: check LungSegmentation/{CXR_png,masks}",
        crossdomain.add_arguments,
        crossdomain.make_run("chest_xray"),
    ),
    "fss1000_patnet": Command(
        "cross-domain test set: check FSS-1000/<class> of the 240 test classes (PATNet/HSNet)",
        crossdomain.add_fss_arguments,
        crossdomain.make_run("fss1000_patnet"),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdaanet-data",
        description="Check a dataset tree, build its label PNGs and write its list files.",
    )
    subparsers = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        sub.add_argument("--root", required=True, type=Path, help="dataset root folder")
        sub.add_argument("--force", action="store_true", help="rewrite existing lists and labels")
        command.add_arguments(sub)
    return parser


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """``sdaanet-data DATASET --root ROOT [...]``: 0 on success."""
    args = build_parser().parse_args(argv)
    args.root = args.root.expanduser()
    COMMANDS[args.dataset].run(args, Report(f"sdaanet-data {args.dataset}"))
    return 0
