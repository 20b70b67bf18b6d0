"""Training-loader throughput: 1-shot episodes per second at 321x321 on real photos (MSRC-v2).

    python bench/data_loader.py [--root ../shared/data/msrc-v2] [--batches 40] [--repeats 3]

For 0 (main process), 1 and 2 workers and both training recipes, the loader is warmed up (the
workers started and the class index built), then ``--batches`` batches of 4 episodes are drawn
``--repeats`` times; the median rate is reported, in episodes/s and per worker. The bar (issue 4):
>= 30 episodes/s per worker, so loading never starves a training step. Results are printed as a
table and written to ``logs/bench/data_loader.json`` with the machine's CPU and thread counts.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its update check would hang offline
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

from sdaanet.data.modules import FolderDataModule

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "msrc-v2"


def rate(root: Path, workers: int, recipe: str, batches: int, repeats: int) -> float:
    dm = FolderDataModule(
        root=root, fold=0, shot=1, train_size=321, batch_size=4, num_workers=workers,
        train_transform=recipe, source={"cache": False},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes with too few images
        dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    for _ in range(3):  # warm-up: worker start, first decodes
        next(it)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            try:
                next(it)
            except StopIteration:
                it = iter(loader)
                next(it)
        rates.append(batches * 4 / (time.perf_counter() - start))
    del it, loader
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "data_loader.json")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"error: {args.root} not found; pass --root to a folder dataset")
    torch.set_num_threads(1)
    rows = []
    for recipe in ("train", "train_paper"):
        for workers in (0, 1, 2):
            eps = rate(args.root, workers, recipe, args.batches, args.repeats)
            per_worker = eps / max(workers, 1)
            rows.append({"recipe": recipe, "workers": workers, "episodes_per_s": round(eps, 1),
                         "per_worker": round(per_worker, 1)})  # fmt: skip
            print(f"{recipe:12s} workers={workers}  {eps:7.1f} episodes/s  "
                  f"({per_worker:6.1f} per worker)", flush=True)  # fmt: skip
    record = {
        "benchmark": "training loader, 1-shot episodes at 321x321, batch 4",
        "data": str(args.root),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batches": args.batches,
        "repeats": args.repeats,
        "bar_per_worker": 30,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
