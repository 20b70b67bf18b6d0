"""What every datamodule of this package shares: its data root."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike | None, name: str) -> Path:
    """`root` (user home expanded); a one-line ValueError naming the dataset if it is unset."""
    if root is None:
        raise ValueError(f"data.root must be set for {name}")
    return Path(os.fspath(root)).expanduser()
