"""Every dataset this package knows, one entry each: `data=<name>` (`conf/data/<name>.yaml`), its
datamodule class, whether it trains or only tests, and its classes and folds.

`sdaanet.data.DATAMODULES`, the fold splits' class counts (`sdaanet.data.folds`), the datamodules'
fold counts, `sdaanet-data`'s cross-domain sets and `sdaanet-predict`'s synthetic-data warning
read this table; tests/test_data_registry.py checks that every data config, datamodule and
protocol map agrees with it. A new dataset is one line here (and its datamodule and config).
"""

from __future__ import annotations

from dataclasses import dataclass

MODULE = "sdaanet.data.modules"  # where every datamodule class lives (the configs' `_target_`)
KINDS = ("few-shot", "cross-domain")


@dataclass(frozen=True)
class Dataset:
    """One dataset: `kind` few-shot (trained and tested fold by fold) or cross-domain (PATNet's
    test-only sets); `num_classes` / `num_folds` None where the dataset's files or its config
    decide (`classes.tsv`, `data.num_folds`)."""

    name: str
    datamodule: str
    kind: str
    num_classes: int | None
    num_folds: int | None

    @property
    def target(self) -> str:
        """The `_target_` of its data config."""
        return f"{MODULE}.{self.datamodule}"


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("synthetic", "SyntheticDataModule", "few-shot", 20, 4),
        Dataset("pascal", "PascalDataModule", "few-shot", 20, 4),
        Dataset("coco", "CocoDataModule", "few-shot", 80, 4),
        Dataset("fss1000", "FSS1000DataModule", "few-shot", None, 1),
        Dataset("folder", "FolderDataModule", "few-shot", None, None),
        Dataset("msrc", "MSRCDataModule", "few-shot", None, 3),
        Dataset("deepglobe", "DeepglobeDataModule", "cross-domain", None, 1),
        Dataset("isic", "ISICDataModule", "cross-domain", None, 1),
        Dataset("chest_xray", "ChestXrayDataModule", "cross-domain", None, 1),
        Dataset("fss1000_patnet", "FSS1000PatnetDataModule", "cross-domain", None, 1),
    )
}


def names(kind: str | None = None) -> tuple[str, ...]:
    """The datasets' names (of one `kind`), in the table's order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return tuple(n for n, d in DATASETS.items() if kind in (None, d.kind))


def dataset_of(target: object) -> Dataset | None:
    """The entry whose datamodule class a `_target_` names (by class name), else None."""
    name = str(target or "").rsplit(".", 1)[-1]
    return next((d for d in DATASETS.values() if d.datamodule == name), None)
