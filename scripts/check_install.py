"""Fail loudly if a forbidden package got into the environment (end of `make install`)."""

from __future__ import annotations

import sys
from importlib import metadata

FORBIDDEN_EXACT = {"torchvision", "timm", "opencv-python", "segmentation-models-pytorch"}
FORBIDDEN_PREFIXES = ("nvidia-", "cuda-")


def main() -> int:
    names = sorted({(d.metadata["Name"] or "").lower() for d in metadata.distributions()})
    bad = [n for n in names if n in FORBIDDEN_EXACT or n.startswith(FORBIDDEN_PREFIXES)]
    if bad:
        print(
            f"install check FAILED: forbidden packages installed: {', '.join(bad)} "
            "(CUDA-linked wheels break `import lightning` on CPU; remove them with "
            "`rm -rf .venv && make install`)",
            file=sys.stderr,
        )
        return 1
    import torch

    print(f"install check OK: torch {torch.__version__}, no torchvision/timm/nvidia-*/cuda-*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
