"""The statistics of the report, in percent: a cell's mean and sample std over its seeds
(`Stat.of`, by `sdaanet.records.mean_std`) and a row's over its folds (`over_folds`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sdaanet.records import mean_std


@dataclass
class Stat:
    """A mean and its sample std (None where it is not defined), in percent."""

    mean: float
    std: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """Mean and sample std of `values` (0 for one value)."""
        return cls(*mean_std(values))

    def __str__(self) -> str:
        return f"{self.mean:.2f}" + ("" if self.std is None else f" ± {self.std:.2f}")


def over_folds(per_seed: Sequence[Sequence[dict[str, float]]], metric: str) -> Stat:
    """Mean over folds of the fold means of `metric`, from each fold's per-seed scores; its std
    is the sample std over seeds of the per-seed fold mean, defined only when every fold has the
    same seeds."""
    mean = Stat.of([Stat.of([e[metric] for e in fold]).mean for fold in per_seed]).mean
    by_seed = [{e["seed"]: e[metric] for e in fold} for fold in per_seed]
    seeds = [e["seed"] for e in per_seed[0]]
    same = len(set(seeds)) == len(seeds) and all(sorted(s) == sorted(seeds) for s in by_seed)
    if not same:
        return Stat(mean, None)
    fold_mean_by_seed = [Stat.of([s[seed] for s in by_seed]).mean for seed in seeds]
    return Stat(mean, Stat.of(fold_mean_by_seed).std)
