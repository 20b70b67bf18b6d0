"""The paper's class-mIoU numbers, read from the `paper:` node of each experiment file.

Every `conf/experiment/table*.yaml` is one row of one of the paper's result tables and holds its
own complete node (not inherited from the file it extends), so composing `experiment=<name>` puts
that row's numbers in `cfg.paper`; other experiments have `paper: null`::

    paper:
      table: "IV"           # I, II, IV, V, VI or VII (III is `make complexity`, VIII is the
                            # per-class IoU of VII's runs)
      row: Baseline + SAAM  # the row's name as the paper prints it, † for the dagger rows
      position: 2           # 1-based order within the table
      dataset: pascal       # pascal | coco
      shot: 1
      trained_as: null      # an eval-only row: the experiment whose checkpoint it evaluates
      class_miou: {fold0: 60.5, fold1: 70.8, fold2: 57.4, fold3: 57.6, mean: 61.6}
      fbiou: null           # the paper reports no FB-IoU

Row order: the paper's row order. Tables I and II print 1-shot and 5-shot side by side in one
row; each becomes two rows named "<method>, 1-shot" and "<method>, 5-shot", all the 1-shot rows
first (the table's left half, top to bottom), then the 5-shot rows. Table I prints
"SD-AAANet(ours)", a typo for the "SD-AANet(ours)" used here and in Table II.

Eval-only rows (`trained_as`): Table II's † rows evaluate the non-† row of the same shot, and
Table V's multi-scale row evaluates the single-scale one. Rows that repeat another table's numbers
(Table IV's Baseline and SD-AANet, Table V's single-scale, as Table I's 1-shot rows) are their own
experiments, so that each table trains and evaluates on its own.

`reproducing_markdown()` renders the "Every cell" section of docs/reproducing.md, which
`scripts/paper_tables.py` (`make paper-doc`) writes there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from sdaanet.config import CONF_DIR
from sdaanet.errors import ConfigError

TABLES: tuple[str, ...] = ("I", "II", "IV", "V", "VI", "VII")
FOLDS: tuple[str, ...] = ("fold0", "fold1", "fold2", "fold3")
DATASETS: tuple[str, ...] = ("pascal", "coco")
_KEYS = ("table", "row", "position", "dataset", "shot", "trained_as", "class_miou", "fbiou")
_NOT_RESULTS = {
    "III": "Table III is the complexity report: make complexity",
    "VIII": "Table VIII is the per-class IoU of Table VII's runs, in their sdaanet-eval records",
}
_ARABIC = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI", "7": "VII", "8": "VIII"}


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table: its experiment file's stem and its `paper:` node."""

    experiment: str
    table: str
    row: str
    position: int
    dataset: str
    shot: int
    trained_as: str | None
    class_miou: dict[str, float]  # fold0..fold3 and mean, in %
    fbiou: dict[str, float] | None

    @property
    def eval_only(self) -> bool:
        """Whether this row evaluates another row's checkpoint instead of training its own."""
        return self.trained_as is not None

    @property
    def train_experiment(self) -> str:
        """The experiment that trains this row's checkpoint."""
        return self.trained_as or self.experiment


def _row(path: Path, node: dict) -> PaperRow:
    """The `paper:` node of `path` as a PaperRow; ConfigError naming the file if it is malformed."""
    where = f"{path.name}: paper"
    if sorted(node) != sorted(_KEYS):
        raise ConfigError(f"{where} has keys {sorted(node)}, expected {sorted(_KEYS)}")
    if node["table"] not in TABLES:
        raise ConfigError(f"{where}.table {node['table']!r} is not one of {', '.join(TABLES)}")
    if node["dataset"] not in DATASETS:
        raise ConfigError(f"{where}.dataset {node['dataset']!r} is not one of {DATASETS}")
    miou = node["class_miou"]
    if not isinstance(miou, dict) or sorted(miou) != sorted((*FOLDS, "mean")):
        raise ConfigError(f"{where}.class_miou must hold fold0..fold3 and mean, got {miou!r}")
    fbiou = node["fbiou"]
    return PaperRow(
        experiment=path.stem,
        table=str(node["table"]),
        row=str(node["row"]),
        position=int(node["position"]),
        dataset=str(node["dataset"]),
        shot=int(node["shot"]),
        trained_as=None if node["trained_as"] is None else str(node["trained_as"]),
        class_miou={k: float(miou[k]) for k in (*FOLDS, "mean")},
        fbiou=None if fbiou is None else {k: float(v) for k, v in fbiou.items()},
    )


def validate_rows(rows: list[PaperRow]) -> None:
    """ConfigError unless each table's positions are unique and each `trained_as` names a trained
    row of the same table, shot and dataset."""
    by_name = {r.experiment: r for r in rows}
    seen: dict[tuple[str, int], str] = {}
    for r in rows:
        key = (r.table, r.position)
        if key in seen:
            raise ConfigError(
                f"{r.experiment}.yaml: paper.position {r.position} of Table {r.table} is taken "
                f"by {seen[key]}.yaml"
            )
        seen[key] = r.experiment
        if r.trained_as is None:
            continue
        target = by_name.get(r.trained_as)
        if target is None or target.table != r.table or target.eval_only:
            raise ConfigError(
                f"{r.experiment}.yaml: paper.trained_as {r.trained_as!r} is not a trained row of "
                f"Table {r.table}"
            )
        if (target.shot, target.dataset) != (r.shot, r.dataset):
            raise ConfigError(
                f"{r.experiment}.yaml: paper.trained_as {r.trained_as!r} is {target.dataset} "
                f"{target.shot}-shot, this row {r.dataset} {r.shot}-shot"
            )


def paper_rows() -> list[PaperRow]:
    """Every row of every table, from the experiment files, in table then position order."""
    rows = []
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=False).get("paper")
        if node is not None:
            rows.append(_row(path, node))
    validate_rows(rows)
    return sorted(rows, key=lambda r: (TABLES.index(r.table), r.position))


def normalize_table(table: str | int) -> str:
    """The table id of `table` ("IV", "iv", "4" or 4 -> "IV"); ConfigError for a table that is
    not one of TABLES, naming the valid ones."""
    text = str(table).strip().upper()
    text = _ARABIC.get(text, text)
    if text in TABLES:
        return text
    hint = f" ({_NOT_RESULTS[text]})" if text in _NOT_RESULTS else ""
    raise ConfigError(f"unknown table {str(table)!r}: choose one of {', '.join(TABLES)}{hint}")


def table_rows(table: str | int) -> list[PaperRow]:
    """The rows of one table in the paper's order."""
    table = normalize_table(table)
    return [r for r in paper_rows() if r.table == table]


def trained_rows(table: str | int) -> list[PaperRow]:
    """The rows of `table` that train their own checkpoint."""
    return [r for r in table_rows(table) if not r.eval_only]


def eval_only_rows(table: str | int) -> list[PaperRow]:
    """The rows of `table` that evaluate the checkpoint of another row (`trained_as`)."""
    return [r for r in table_rows(table) if r.eval_only]


def reproducing_markdown() -> str:
    """The generated "Every cell" section of docs/reproducing.md (without the markers)."""
    rows = paper_rows()
    lines = ["One command per table (all its cells, folds 0-3, then the report):", ""]
    for table in TABLES:
        these = [r for r in rows if r.table == table]
        trained = sum(not r.eval_only for r in these)
        lines.append(
            f"- Table {table}: `make table TABLE={table}` ({len(these)} rows: "
            f"{4 * trained} training runs, {4 * len(these)} evaluations)"
        )
    lines += [
        "",
        "| table | row | fold | paper class-mIoU | train | evaluate |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for i, fold in enumerate(FOLDS):
            train = f"`python -m sdaanet.train experiment={r.train_experiment} data.fold={i}`"
            evaluate = (
                f"`python -m sdaanet.eval experiment={r.experiment} data.fold={i} ckpt_path=<ckpt>`"
            )
            cells = (r.table, r.row, str(i), f"{r.class_miou[fold]:.1f}", train, evaluate)
            lines.append("| " + " | ".join(cells) + " |")
        mean = f"{r.class_miou['mean']:.1f}"
        report = "the four folds | `sdaanet-report <dir>`"
        lines.append(f"| {r.table} | {r.row} | mean | {mean} | {report} |")
    return "\n".join(lines) + "\n"
