"""The paper's numbers as data: the `paper:` nodes of the experiments, `sdaanet.paper` and the
generated section of docs/reproducing.md agree."""

import dataclasses
import statistics

import pytest
from scripts.paper_tables import generated_section, main, replace_section

from sdaanet import compose_config
from sdaanet.config import CONF_DIR, ROOT_DIR
from sdaanet.errors import ConfigError
from sdaanet.paper import (
    FOLDS,
    TABLES,
    eval_only_rows,
    paper_rows,
    reproducing_markdown,
    table_rows,
    trained_rows,
    validate_rows,
)

ROWS = paper_rows()
TABLE_FILES = sorted(p.stem for p in (CONF_DIR / "experiment").glob("table*.yaml"))


def _row(table: str, name: str):
    (found,) = [r for r in table_rows(table) if r.row == name]
    return found


def test_every_table_file_is_one_row_and_every_table_has_rows():
    assert sorted(r.experiment for r in ROWS) == TABLE_FILES
    assert {r.table for r in ROWS} == set(TABLES) == {"I", "II", "IV", "V", "VI", "VII"}
    counts = {t: len(table_rows(t)) for t in TABLES}
    assert counts == {"I": 4, "II": 8, "IV": 4, "V": 2, "VI": 2, "VII": 2}
    for table in TABLES:
        assert [r.position for r in table_rows(table)] == list(range(1, counts[table] + 1))


def test_numbers_as_the_paper_prints_them():
    # typed from the paper's tables, not from the configs
    saam = _row("IV", "Baseline + SAAM")
    assert (saam.experiment, saam.class_miou["fold2"], saam.class_miou["mean"]) == (
        "table4_saam",
        57.4,
        61.6,
    )
    assert _row("VII", "SD-AANet").class_miou["mean"] == 43.2
    dagger = _row("II", "SD-AANet(ours)†, 5-shot")
    assert (dagger.class_miou["fold1"], dagger.shot, dagger.dataset) == (51.9, 5, "coco")
    assert _row("I", "Baseline(ours), 5-shot").class_miou == {
        "fold0": 63.7, "fold1": 70.5, "fold2": 57.2, "fold3": 57.5, "mean": 62.2,
    }  # fmt: skip
    assert _row("V", "Multi-scale").class_miou["fold1"] == 72.2
    assert _row("VI", "Integral Strategy").class_miou["fold0"] == 64.9
    assert [r.row for r in table_rows("I")] == [
        "Baseline(ours), 1-shot", "SD-AANet(ours), 1-shot",
        "Baseline(ours), 5-shot", "SD-AANet(ours), 5-shot",
    ]  # fmt: skip


def test_means_are_the_rounded_mean_of_the_folds():
    # holds for every row of the paper's Tables I-VII (checked against the paper: no exceptions)
    for r in ROWS:
        folds = statistics.mean(r.class_miou[f] for f in FOLDS)
        assert abs(folds - r.class_miou["mean"]) <= 0.051, (r.experiment, folds)


def test_the_paper_reports_no_fbiou():
    assert all(r.fbiou is None for r in ROWS)


@pytest.mark.parametrize("config_name", ["train", "eval"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.experiment)
def test_composed_config_holds_its_own_row(row, config_name):
    cfg = compose_config([f"experiment={row.experiment}"], config_name=config_name)
    assert (cfg.paper.table, cfg.paper.row, cfg.paper.position) == (
        row.table,
        row.row,
        row.position,
    )
    assert cfg.paper.trained_as == row.trained_as
    assert dict(cfg.paper.class_miou) == row.class_miou
    assert cfg.shot == row.shot == cfg.paper.shot
    module = {"pascal": "PascalDataModule", "coco": "CocoDataModule"}[row.dataset]
    assert cfg.data._target_ == f"sdaanet.data.modules.{module}"


@pytest.mark.parametrize("config_name", ["train", "eval"])
@pytest.mark.parametrize("name", ["paper_equations", "demo", "demo_multiclass", None])
def test_other_configs_have_no_paper_row(name, config_name):
    overrides = [] if name is None else [f"experiment={name}"]
    assert compose_config(overrides, config_name=config_name).paper is None


def test_eval_only_rows_evaluate_a_trained_row_of_their_table():
    eval_only = {r.experiment: r.trained_as for t in TABLES for r in eval_only_rows(t)}
    assert eval_only == {
        "table2_baseline_dagger": "table2_baseline",
        "table2_baseline_dagger_5shot": "table2_baseline_5shot",
        "table2_sdaanet_dagger": "table2_sdaanet",
        "table2_sdaanet_dagger_5shot": "table2_sdaanet_5shot",
        "table5_multiscale": "table5_single",
    }
    for table in TABLES:
        trained = {r.experiment: r for r in trained_rows(table)}
        for r in eval_only_rows(table):
            target = trained[r.trained_as]
            assert (target.table, target.shot, target.dataset) == (r.table, r.shot, r.dataset)
            assert r.train_experiment == target.experiment


def test_bad_trained_as_or_position_is_refused():
    dagger = _row("II", "SD-AANet(ours)†, 5-shot")
    for trained_as, message in [
        ("table1_sdaanet_5shot", "not a trained row of Table II"),  # another table
        ("table2_baseline_dagger_5shot", "not a trained row of Table II"),  # eval-only itself
        ("table2_sdaanet", "is coco 1-shot, this row coco 5-shot"),  # another shot
    ]:
        bad = dataclasses.replace(dagger, trained_as=trained_as)
        rows = [bad if r.experiment == bad.experiment else r for r in ROWS]
        with pytest.raises(ConfigError, match=message):
            validate_rows(rows)
    taken = dataclasses.replace(dagger, position=1)
    with pytest.raises(ConfigError, match="position 1 of Table II is taken"):
        validate_rows([taken if r.experiment == taken.experiment else r for r in ROWS])


def test_unknown_table_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as err:
        table_rows("III")
    assert str(err.value) == (
        "unknown table 'III': choose one of I, II, IV, V, VI, VII "
        "(Table III is the complexity report: make complexity)"
    )
    with pytest.raises(
        ConfigError, match=r"^unknown table 'IX': choose one of I, II, IV, V, VI, VII$"
    ):
        table_rows("IX")
    assert table_rows("iv") == table_rows(4) == table_rows("IV")


def test_doc_section_is_generated_from_the_configs():
    doc = (ROOT_DIR / "docs" / "reproducing.md").read_text(encoding="utf-8")
    assert generated_section(doc) == reproducing_markdown(), (
        "docs/reproducing.md is stale: run `make paper-doc`"
    )


def test_generated_markdown_lists_every_cell():
    text = reproducing_markdown()
    for table in TABLES:
        assert f"`make table TABLE={table}`" in text
    assert (
        "| IV | Baseline + SAAM | 2 | 57.4 | `python -m sdaanet.train experiment=table4_saam "
        "data.fold=2` | `python -m sdaanet.eval experiment=table4_saam data.fold=2 "
        "ckpt_path=<ckpt>` |"
    ) in text
    # an eval-only row trains with its trained_as experiment
    assert (
        "| V | Multi-scale | 0 | 62.5 | `python -m sdaanet.train experiment=table5_single "
        "data.fold=0`"
    ) in text
    assert "| VII | SD-AANet | mean | 43.2 | the four folds | `sdaanet-report <dir>` |" in text
    assert text.count("\n| ") == 1 + len(ROWS) * 5  # the header line, four folds and a mean each


def test_replace_section_and_cli(capsys):
    begin = "<!-- BEGIN GENERATED: sdaanet.paper.reproducing_markdown -->"
    text = f"intro\n{begin}\nold\n<!-- END GENERATED -->\nrest\n"
    assert replace_section(text, "new\n") == f"intro\n{begin}\nnew\n<!-- END GENERATED -->\nrest\n"
    with pytest.raises(ConfigError, match="found 0"):
        replace_section("no markers", "new\n")
    assert main([]) == 0
    assert capsys.readouterr().out == reproducing_markdown()


def test_the_script_rewrites_a_stale_section_and_leaves_a_current_one(tmp_path, capsys):
    committed = (ROOT_DIR / "docs" / "reproducing.md").read_text(encoding="utf-8")
    stale = tmp_path / "reproducing.md"
    stale.write_text(replace_section(committed, "old\n"), encoding="utf-8")
    assert main(["--write", "--doc", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == committed
    assert main(["--write", "--doc", str(stale)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{stale}: rewritten", f"{stale}: up to date"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--write", "--doc", str(tmp_path / "none.md")])
    assert exit_info.value.code == 2
