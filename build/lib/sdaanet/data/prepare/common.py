"""Helpers shared by the ``sdaanet-data`` subcommands.

- Errors are :class:`PrepareError`: one line naming the file or folder and what was expected.
- List files hold ``<image> <label>`` lines relative to the dataset root, newline-terminated.
  A list that already exists is kept unless ``--force``; a list given on the command line is
  copied byte for byte (an existing, different list is only replaced with ``--force``).
- Every file a list names must exist: otherwise the error gives the count and the first three.
- Label PNGs and lists are written atomically (a temporary file, then a rename), so an
  interrupted run never leaves a half-written file under its final name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sdaanet.data.sources.listfile import read_list
from sdaanet.errors import DataError, PrepareError, one_line
from sdaanet.io import atomic_write

Pair = tuple[str, str]


class Report:
    """The lines a run reports; echoed as they come when ``prog`` is set (the CLI)."""

    def __init__(self, prog: str | None = None) -> None:
        self.prog = prog
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)
        if self.prog:
            print(message, flush=True)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")
        if self.prog:
            print(f"{self.prog}: warning: {message}", file=sys.stderr, flush=True)


def expand(path: Path | None) -> Path | None:
    """``path`` with ``~`` expanded (None stays None)."""
    return path.expanduser() if path is not None else None


def write_png(path: Path, label: np.ndarray) -> None:
    """Write a uint8 (H,W) class-id map as a mode-L PNG, atomically. Not fsynced: a dataset has
    tens of thousands of labels, and one lost to a crash is reported as corrupt when read."""
    image = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8))
    atomic_write(path, lambda f: image.save(f, format="PNG"), fsync=False)


def write_list(path: Path, pairs: Iterable[Pair]) -> None:
    """Write ``<image> <label>`` lines, each newline-terminated, atomically."""
    atomic_write(path, "".join(f"{image} {label}\n" for image, label in pairs))


def read_pairs(path: Path) -> list[Pair]:
    """The (image, label) pairs of a list file (``sources.listfile.read_list``), not empty."""
    try:
        pairs = read_list(path)
    except (OSError, UnicodeDecodeError, DataError) as err:
        raise PrepareError(f"cannot read list {path}: {one_line(err)}") from None
    if not pairs:
        raise PrepareError(f"list {path} is empty")
    return pairs


def read_ids(path: Path) -> list[str]:
    """The ids of an id list (one per line, as in VOC ``ImageSets`` and SBD)."""
    try:
        return path.read_text().split()
    except (OSError, UnicodeDecodeError) as err:
        raise PrepareError(f"cannot read id list {path}: {one_line(err)}") from None


def first(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def check_exists(root: Path, paths: Iterable[str], named_by: Path | str) -> None:
    """Raise if any of ``paths`` (relative to ``root``) is missing: count and first three."""
    paths = list(dict.fromkeys(paths))
    missing = [str(root / p) for p in paths if not (root / p).is_file()]
    if missing:
        raise PrepareError(
            f"{len(missing)} of {len(paths)} files named by {named_by} are missing: "
            f"{first(missing)}"
        )


@dataclass
class ListPlan:
    """A list file to keep, copy or write, with the pairs it holds."""

    path: Path
    pairs: list[Pair]
    action: str  # "kept" | "copied" | "wrote"
    origin: str  # where the pairs come from, for error messages
    given: Path | None = None

    def images(self) -> list[str]:
        return [image for image, _ in self.pairs]

    def files(self) -> list[str]:
        return [p for pair in self.pairs for p in pair]

    def commit(self, report: Report) -> None:
        """Write the list (unless kept) and report it."""
        if self.given is not None:
            atomic_write(self.path, self.given.read_bytes())
        elif self.action == "wrote":
            write_list(self.path, self.pairs)
        source = f" from {self.given}" if self.given else ""
        report.info(f"{self.action} {self.path}{source} ({len(self.pairs)} images)")


def plan_list(
    path: Path,
    given: Path | None,
    force: bool,
    generate: Callable[[], list[Pair]],
    origin: str,
) -> ListPlan:
    """Decide what becomes of the list at ``path``: the ``given`` file, the existing one, or a
    new one from ``generate()`` (whose input ``origin`` names)."""
    exists = path.is_file()
    if given is not None:
        if not given.is_file():
            raise PrepareError(f"list {given} does not exist")
        pairs = read_pairs(given)
        if exists and path.read_bytes() == given.read_bytes():
            return ListPlan(path, pairs, "kept", str(path))
        if exists and not force:
            raise PrepareError(f"{path} exists and differs from {given}: --force replaces it")
        return ListPlan(path, pairs, "copied", str(given), given)
    if exists and not force:
        return ListPlan(path, read_pairs(path), "kept", str(path))
    return ListPlan(path, generate(), "wrote", origin)
