"""``sdaanet-data deepglobe|isic|chest_xray|fss1000_patnet --root <datapath>``: check one test
set of PATNet's cross-domain benchmark (``sources.crossdomain``; nothing is converted).

The tree is listed by PATNet's rules, then every listed image and mask is read once. The report
gives the images per class, the files PATNet's name rule leaves out (``a.b.jpg``), and every
missing or malformed file (the count and the first few): a missing mask is named by the path it
is expected at, an unreadable file or an image/mask size mismatch names both. Any missing or
malformed file ends the run with one ``error:`` line (exit 2); a mask without foreground (no
pixel >= 128, so never a query or support) is a warning.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sdaanet.data.prepare.common import Report, first
from sdaanet.data.registry import names
from sdaanet.data.sources.crossdomain import FOREGROUND, Listing, listing
from sdaanet.data.sources.fss1000 import read_mask
from sdaanet.errors import DataError, DataNotFoundError, PrepareError, one_line
from sdaanet.io import open_image

DATASETS = names("cross-domain")
SHOW = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=8, help="threads reading files (default 8)")


def add_fss_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument(
        "--split-file", type=Path, default=None,
        help="the test class list (default <root>/FSS-1000/splits/test.txt, HSNet's "
        "data/splits/fss/test.txt)",
    )  # fmt: skip


def pair_problem(root: Path, image: str, mask: str) -> tuple[str | None, bool]:
    """(what is wrong with the pair, whether its mask has foreground)."""
    try:
        width, height = open_image(root / image).size
        grey = read_mask(root / mask)
    except (DataError, DataNotFoundError) as err:
        return one_line(err), True
    if grey.shape != (height, width):
        return (
            f"mask {root / mask} is {grey.shape[1]}x{grey.shape[0]} but image {root / image} is "
            f"{width}x{height}"
        ), True
    return None, bool((grey >= FOREGROUND).any())


def _lines(report: Report, title: str, items: list[str]) -> None:
    report.info(f"{title}: {len(items)}")
    for item in items[:SHOW]:
        report.info(f"  {item}")
    if len(items) > SHOW:
        report.info(f"  ... and {len(items) - SHOW} more")


def check_listing(root: Path, items: Listing, workers: int, report: Report) -> None:
    """Report missing and malformed files of ``items``; raise ``PrepareError`` if there are."""
    files = list(dict.fromkeys(f for pair in items.pairs for f in pair))
    missing = [str(root / f) for f in files if not (root / f).is_file()]
    present = [p for p in items.pairs if (root / p[0]).is_file() and (root / p[1]).is_file()]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda p: pair_problem(root, *p), present))
    malformed = [problem for problem, _ in results if problem]
    empty = [str(root / p[1]) for p, (problem, fg) in zip(present, results, strict=True)
             if not problem and not fg]  # fmt: skip
    if empty:
        report.warn(
            f"{len(empty)} masks have no pixel >= {FOREGROUND} (never a query or support): "
            f"{first(empty)}"
        )
    if missing:
        _lines(report, "missing files", missing)
    if malformed:
        _lines(report, "malformed files", malformed)
    if missing or malformed:
        counts = [f"{len(missing)} of {len(files)} files missing"] if missing else []
        counts += [f"{len(malformed)} malformed"] if malformed else []
        shown = (missing or malformed)[0]
        raise PrepareError(f"{' and '.join(counts)} under {root}, first: {shown}")


def make_run(dataset: str) -> Callable[[argparse.Namespace, Report], None]:
    """The ``run`` of the subcommand of ``dataset``."""

    def run(args: argparse.Namespace, report: Report) -> None:
        try:
            items = listing(dataset, args.root, getattr(args, "split_file", None))
        except (DataNotFoundError, DataError) as err:
            raise PrepareError(str(err)) from None
        counts = items.counts()
        report.info(
            f"{dataset}: {len(items.pairs)} images in {len(counts)} classes: "
            + ", ".join(f"{items.class_names[c]}: {n}" for c, n in counts.items())
        )
        few = [items.class_names[c] for c, n in counts.items() if n < 2]
        if few:
            report.warn(f"classes with fewer than 2 images (no 1-shot episode): {', '.join(few)}")
        if items.left_out:
            report.warn(
                f"{len(items.left_out)} files left out by PATNet's name rule "
                f"(name.split('.')[1] must be the extension): {first(list(items.left_out))}"
            )
        check_listing(args.root, items, args.workers, report)
        report.info(
            f"ok: evaluate with sdaanet-eval ckpt_path=<PASCAL checkpoint> data={dataset} "
            f"paths.data_dir={args.root}"
        )

    return run
