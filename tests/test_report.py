"""`sdaanet-report`: evaluation records of a sweep -> the paper-style table (hand-computed)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.helpers.cli import exit_code

from sdaanet.report import main
from sdaanet.reporting.collect import ReportError, load_records
from sdaanet.reporting.write import report

SEEDS = (321, 322, 323)
PAPER = {
    "table": "IV",
    "row": "Baseline + SAAM",
    "dataset": "pascal",
    "shot": 1,
    "trained_as": None,
    "position": 2,
    "class_miou": {"fold0": 60.0, "fold1": 50.0, "mean": 55.0},
    "fbiou": None,
}


def record(fold, miou, fbiou=None, *, overrides=(), experiment="table4_saam", folds=2,
           episodes=1000, when="2026-12-02T01:00:00+00:00", paper=None, dataset="pascal",
           selected="base", plumbing_only=None):  # fmt: skip
    """A format-2 record with the given per-seed class-mIoU / FB-IoU (fractions); with
    `plumbing_only` (True/False), a record that says whether it is a plumbing-only run."""
    fbiou = fbiou or [0.5] * len(miou)
    seeds = [
        {"seed": s, "class_miou": m, "fbiou": b, "per_class_iou": [m]}
        for s, m, b in zip(SEEDS, miou, fbiou, strict=False)
    ]
    return {
        "format": 2,
        "evaluated_at": when,
        "checkpoint": f"logs/{'-'.join(overrides)}/fold{fold}/checkpoints/best.ckpt",
        "run_dir": "logs/x",
        "protocol": {
            "dataset": dataset,
            "fold": fold,
            "folds": folds,
            "shot": 1,
            "ways": 1,
            "episodes": episodes,
            "seeds": list(SEEDS[: len(miou)]),
            "input_size": 473,
            "val_transform": "val_warp",
            "label_mode": "authors",
            "scored_on": "transformed label",
            "multiscale": None,
            "checkpoint_selected_on": selected,
        },  # fmt: skip
        "configuration": {
            "experiment": experiment,
            "overrides": [
                *([f"experiment={experiment}"] if experiment else []),
                f"data.fold={fold}",
                *overrides,
                "debug=tiny",
                "paths.output_dir=/somewhere",
                "hydra.job.name=x",
                "ckpt_path=last.ckpt",
            ],
        },
        "paper": paper,
        "classes": ["c"],
        "class_ids": [1],
        "seeds": seeds,
        "summary": {"class_miou": {"mean": 0, "std": 0}, "fbiou": {"mean": 0, "std": 0}},
        **({} if plumbing_only is None else {"plumbing_only": plumbing_only}),
    }


def write(path, rec):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def run(sweep, index, rec, copy=True):
    """A multirun job folder: `metrics.json` and, like a training run, its copy under eval/; the
    sweep directory holds Hydra's `multirun.yaml`, as a sweep's does."""
    swept = [o for o in rec["configuration"]["overrides"] if o.startswith(("model.", "data.f"))]
    folder = sweep / f"{index}_{','.join(swept)}"  # e.g. 0_model.alpha=10,data.fold=0
    write(folder / "metrics.json", rec)
    (sweep / "multirun.yaml").touch()
    if copy:
        write(folder / "eval" / f"best-fold{rec['protocol']['fold']}.json", rec)


def alpha_beta_sweep(sweep, **kwargs):
    """Two configurations x two folds; the first carries the paper's numbers. `kwargs`: more
    arguments of every `record`."""
    a10 = ["model.alpha=10", "model.beta=0.5"]
    a5 = ["model.alpha=5", "model.beta=1.0"]
    for i, (fold, miou, fbiou, overrides, paper) in enumerate([
        (0, [0.60, 0.62, 0.64], [0.70, 0.71, 0.72], a10, PAPER),
        (1, [0.50, 0.50, 0.53], [0.80, 0.80, 0.80], a10, PAPER),
        (0, [0.40, 0.40, 0.40], [0.60, 0.60, 0.60], a5, None),
        (1, [0.30, 0.32, 0.34], [0.70, 0.70, 0.70], a5, None),
    ]):  # fmt: skip
        run(sweep, i, record(fold, miou, fbiou, overrides=overrides, paper=paper, **kwargs))


def heatmap_figures(monkeypatch):
    """The figures saved from now on (heatmap.png's), in order."""
    from matplotlib.figure import Figure

    saved, save = [], Figure.savefig

    def keep_and_save(fig, *args, **kwargs):
        saved.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_and_save)
    return saved


def test_cells_fold_mean_fbiou_paper_and_duplicates(tmp_path):
    sweep = tmp_path / "sweep"
    alpha_beta_sweep(sweep)
    table, written = report([sweep])
    assert table.folds == [0, 1]
    assert table.keys == ["model.alpha", "model.beta"]
    # numeric order: alpha=5 before alpha=10 (not as strings); labels only from differing keys
    five, ten = table.rows
    assert five.label == "model.alpha=5 model.beta=1.0"
    assert ten.label == "model.alpha=10 model.beta=0.5 (Baseline + SAAM)"
    c0, c1 = ten.cells[0], ten.cells[1]
    assert (c0.class_miou.mean, c0.class_miou.std) == pytest.approx((62.0, 2.0))
    assert (c1.class_miou.mean, c1.class_miou.std) == pytest.approx((51.0, 1.7320508))
    assert (c0.fbiou.mean, c0.fbiou.std) == pytest.approx((71.0, 1.0))
    assert (c1.fbiou.mean, c1.fbiou.std) == pytest.approx((80.0, 0.0))
    # per-seed fold means 55, 56, 58.5
    assert (ten.mean.mean, ten.mean.std) == pytest.approx((56.5, 1.8027756))
    assert (ten.fbiou.mean, ten.fbiou.std) == pytest.approx((75.5, 0.5))
    assert (ten.paper_mean, ten.delta) == (55.0, pytest.approx(1.5))
    assert (c0.paper, c0.delta, c1.paper, c1.delta) == (60.0, pytest.approx(2.0), 50.0, 1.0)
    assert five.cells[1].class_miou.mean == pytest.approx(32.0)
    assert (five.mean.mean, five.mean.std) == pytest.approx((36.0, 1.0))
    assert (five.fbiou.mean, five.fbiou.std) == pytest.approx((65.0, 0.0))
    assert five.paper is None and five.delta is None
    # metrics.json + eval/ copy: one record each, the copy listed
    assert len(table.sources) == 4 and all(len(s.copies) == 1 for s in table.sources)
    assert all(c.records == 1 for r in table.rows for c in r.cells.values())
    assert [p.name for p in written] == ["report.md", "report.csv", "report.json", "heatmap.png"]
    md = (sweep / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| model.alpha=10"))
    assert "| 62.00 ± 2.00 | 51.00 ± 1.73 | 56.50 ± 1.80 | 75.50 ± 0.50 | 55.0 | +1.50 |" in line
    line = next(x for x in md.splitlines() if x.startswith("| model.alpha=5"))
    assert "| 40.00 ± 0.00 | 32.00 ± 2.00 | 36.00 ± 1.00 | 65.00 ± 0.00 |  |  |" in line
    assert "Protocol: pascal, 1-shot 1-way, 1000 episodes x 3 seeds, input 473" in md
    assert "0_data.fold=0" in md and "metrics.json" in md  # the records read are listed


def test_csv_and_json_read_back(tmp_path):
    sweep = tmp_path / "sweep"
    alpha_beta_sweep(sweep)
    report([sweep])
    with open(sweep / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [
        "model.alpha=5 model.beta=1.0",
        "model.alpha=10 model.beta=0.5 (Baseline + SAAM)",
    ]
    ten = rows[1]
    assert float(ten["fold0_class_miou"]) == pytest.approx(62.0)
    assert float(ten["fold1_class_miou_std"]) == pytest.approx(1.7321)
    assert float(ten["fold0_fbiou"]) == pytest.approx(71.0)
    assert (float(ten["mean"]), float(ten["std"])) == pytest.approx((56.5, 1.8028))
    assert float(ten["fbiou"]) == pytest.approx(75.5)
    assert (float(ten["paper"]), float(ten["delta"])) == pytest.approx((55.0, 1.5))
    assert (float(ten["paper_fold1"]), float(ten["delta_fold1"])) == pytest.approx((50.0, 1.0))
    assert rows[0]["paper"] == "" and rows[0]["delta"] == ""
    data = json.loads((sweep / "report.json").read_text(encoding="utf-8"))
    assert data["folds"] == [0, 1] and data["keys"] == ["model.alpha", "model.beta"]
    row = data["rows"][1]
    assert row["mean"]["mean"] == pytest.approx(56.5)
    assert row["cells"]["1"]["class_miou"]["std"] == pytest.approx(1.7320508)
    assert [s["class_miou"] for s in row["cells"]["0"]["per_seed"]] == pytest.approx([60, 62, 64])
    assert row["paper"]["table"] == "IV"
    assert data["protocols"][0]["settings"]["episodes"] == 1000


def test_heatmap_only_for_a_two_key_sweep(tmp_path, monkeypatch):
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    saved, save = [], Figure.savefig  # the figure written to heatmap.png

    def keep_and_save(fig, *args, **kwargs):
        saved.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_and_save)
    two = tmp_path / "two"
    alpha_beta_sweep(two)
    report([two])
    ax = saved[0].axes[0]
    # rows: alpha 5, 10 (numeric order); columns: beta 0.5, 1.0; the rows' means 36.0 and 56.5
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("model.alpha", "model.beta")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["5", "10"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1.0"]
    grid = ax.images[0].get_array()
    assert grid.mask.tolist() == [[True, False], [False, True]]  # the other two cells: blank
    assert (grid[0, 1], grid[1, 0]) == (pytest.approx(36.0), pytest.approx(56.5))
    assert sorted((t.get_position(), t.get_text()) for t in ax.texts) == [
        ((0, 1), "56.50"), ((1, 0), "36.00"),
    ]  # fmt: skip
    # the PNG: each cell (beside its number) in its colour, the lowest and highest of viridis
    with Image.open(two / "heatmap.png") as im:
        png = np.asarray(im.convert("RGB")).astype(int)
    scale = png.shape[1] / saved[0].bbox.width  # saved at 120 dpi, laid out at the figure's
    viridis = colormaps["viridis"]
    for (i, j), colour in {(0, 0): (1, 1, 1), (0, 1): viridis(0.0)[:3], (1, 0): viridis(1.0)[:3],
                           (1, 1): (1, 1, 1)}.items():  # fmt: skip
        x, y = ax.transData.transform((j + 0.35, i + 0.3)) * scale
        pixel = png[png.shape[0] - 1 - round(y), round(x)]
        assert np.abs(pixel - 255 * np.array(colour)).max() <= 3, ((i, j), pixel)
    one = tmp_path / "one"
    for i, alpha in enumerate(["10", "5"]):
        for fold in (0, 1):
            run(one, 2 * i + fold, record(fold, [0.5], overrides=[f"model.alpha={alpha}"]))
    table, written = report([one])
    assert table.keys == ["model.alpha"] and len(written) == 3
    assert not (one / "heatmap.png").exists()


def test_several_evaluations_of_a_cell_latest_used_and_marked(tmp_path):
    sweep = tmp_path / "sweep"
    alpha_beta_sweep(sweep)
    later = record(1, [0.55, 0.55, 0.55], overrides=["model.alpha=10", "model.beta=0.5"],
                   when="2026-12-03T00:00:00+00:00", paper=PAPER)  # fmt: skip
    write(sweep / "00_rerun" / "metrics.json", later)  # read before the original
    table, _ = report([sweep])
    ten = table.rows[1]
    assert ten.cells[1].records == 2 and ten.cells[1].class_miou.mean == pytest.approx(55.0)
    assert ten.cells[1].record.endswith("00_rerun/metrics.json")
    assert "fold 1: 2 records, latest used" in ten.notes
    # never an average of evaluations: mean of 62 and 55, per-seed 57.5, 58.5, 59.5
    assert (ten.mean.mean, ten.mean.std) == pytest.approx((58.5, 1.0))
    assert sum(not s.used for s in table.sources) == 1
    md = (sweep / "report.md").read_text()
    assert "| 55.00 ± 0.00 * |" in md and "several evaluations of this cell" in md


def test_missing_fold_gets_a_labelled_partial_mean_never_the_mean(tmp_path):
    sweep = tmp_path / "sweep"
    for fold in (0, 1, 3):
        run(sweep, fold, record(fold, [0.5, 0.6], folds=4))
    table, _ = report([sweep])
    (row,) = table.rows
    assert table.folds == [0, 1, 2, 3] and row.missing == [2]
    assert row.mean is None and row.fbiou is None
    assert row.partial.folds == [0, 1, 3] and row.partial.of == 4
    assert row.label == "table4_saam"  # no key differs: the experiment's name
    md = (sweep / "report.md").read_text()
    assert (
        "| table4_saam | 55.00 ± 7.07 | 55.00 ± 7.07 | — | 55.00 ± 7.07 | 55.00 ± 7.07 (folds 0, "
        "1, 3 of 4) | 50.00 ± 0.00 (folds 0, 1, 3 of 4) | missing fold 2 |"
    ) in md
    with open(sweep / "report.csv", newline="", encoding="utf-8") as f:
        (line,) = csv.DictReader(f)
    assert line["mean"] == "" and line["notes"] == "missing fold 2"
    assert (line["partial_mean"], line["partial_folds"]) == ("55.0", "0 1 3 of 4")


def test_a_two_fold_sweep_of_four_gets_labelled_partial_means_and_heatmap(tmp_path, monkeypatch):
    saved = heatmap_figures(monkeypatch)
    full = tmp_path / "full"
    alpha_beta_sweep(full)  # the dataset has 2 folds: the means over all folds, unchanged
    report([full])
    assert saved[-1].axes[0].get_title() == "class-mIoU (%), mean over folds"
    sweep = tmp_path / "sweep"
    alpha_beta_sweep(sweep, folds=4)  # folds 0 and 1 of 4
    table, written = report([sweep])
    five, ten = table.rows
    assert table.folds == [0, 1, 2, 3] and ten.missing == [2, 3]
    # never passed off as the 4-fold mean, nor compared with the paper's 4-fold mean
    assert ten.mean is None and ten.fbiou is None and ten.delta is None
    assert (ten.partial.folds, ten.partial.of) == ([0, 1], 4)
    assert (ten.partial.class_miou.mean, ten.partial.class_miou.std) == pytest.approx(
        (56.5, 1.8027756)
    )
    assert ten.partial.fbiou.mean == pytest.approx(75.5)
    md = (sweep / "report.md").read_text()
    assert (
        "| model.alpha=10 model.beta=0.5 (Baseline + SAAM) | 62.00 ± 2.00 | 51.00 ± 1.73 | — | — "
        "| 56.50 ± 1.80 (folds 0, 1 of 4) | 75.50 ± 0.50 (folds 0, 1 of 4) | 55.0 |  | "
        "missing folds 2, 3 |"
    ) in md
    assert "(folds 0, 1 of 4) after a mean: the row lacks folds" in md
    with open(sweep / "report.csv", newline="", encoding="utf-8") as f:
        line = list(csv.DictReader(f))[1]
    assert (line["mean"], line["delta"], line["partial_folds"]) == ("", "", "0 1 of 4")
    assert float(line["partial_mean"]) == pytest.approx(56.5)
    # the heatmap of the same folds, titled with them
    assert written[-1].name == "heatmap.png"
    ax = saved[-1].axes[0]
    assert ax.get_title() == "class-mIoU (%), mean over folds 0, 1 of 4"
    grid = ax.images[0].get_array()
    assert (grid[0, 1], grid[1, 0]) == (pytest.approx(36.0), pytest.approx(56.5))
    # rows over different folds: no heatmap (a cell would not compare with another)
    for fold in (2, 3):
        rec = record(fold, [0.5] * 3, overrides=["model.alpha=5", "model.beta=1.0"], folds=4)
        run(sweep, 10 + fold, rec)
    table, written = report([sweep], tmp_path / "mixed")
    assert table.rows[0].mean is not None and table.rows[1].mean is None
    assert [p.name for p in written] == ["report.md", "report.csv", "report.json"]


def test_plumbing_only_rows_say_so_in_table_csv_json_heatmap_and_console(
    tmp_path, monkeypatch, capsys
):
    saved = heatmap_figures(monkeypatch)
    tiny = tmp_path / "tiny"
    alpha_beta_sweep(tiny, plumbing_only=True)
    assert main([str(tiny)]) == 0
    console = capsys.readouterr().out
    table, _ = report([tiny])
    assert all(r.plumbing_only for r in table.rows)
    ten = table.rows[1]
    assert ten.mean.mean == pytest.approx(56.5) and ten.paper_mean == 55.0
    assert ten.delta is None and all(c.delta is None for c in ten.cells.values())
    md = (tiny / "report.md").read_text()
    banner = "**Plumbing-only run: not a result** (every row: plumbing_only=true"
    assert md.startswith(f"# Evaluation report\n\n{banner}") and console.startswith(banner)
    line = next(x for x in md.splitlines() if x.startswith("| model.alpha=10"))
    assert line.endswith("| 55.0 | none: plumbing-only | plumbing-only run: not a result |")
    with open(tiny / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["plumbing_only"] for r in rows] == ["true", "true"] and rows[1]["delta"] == ""
    data = json.loads((tiny / "report.json").read_text(encoding="utf-8"))
    assert [r["plumbing_only"] for r in data["rows"]] == [True, True]
    assert saved[-1].get_suptitle() == "plumbing-only run: not a result"
    # a real run (plumbing_only false, or a record from before the flag): none of it
    for i, flag in enumerate([False, None]):
        real = tmp_path / f"real{i}"
        alpha_beta_sweep(real, plumbing_only=flag)
        table, _ = report([real])
        assert not any(r.plumbing_only for r in table.rows)
        assert table.rows[1].delta == pytest.approx(1.5)
        assert "not a result" not in (real / "report.md").read_text()
        assert saved[-1].get_suptitle() == ""


def test_the_committed_real_photo_table_is_a_result(tmp_path):
    """docs/real-photos/table4 (MSRC-v2, EfficientNet-Lite0, `recipe=msrc_lite0`): the CPU table
    that means something; every row complete over the 3 folds, none plumbing-only."""
    table, _ = report([Path(__file__).parents[1] / "docs" / "real-photos" / "table4"], tmp_path)
    assert table.folds == [0, 1, 2] and len(table.rows) == 4
    assert all(r.mean is not None and not r.plumbing_only for r in table.rows)
    assert "not a result" not in (tmp_path / "report.md").read_text()


def test_mixed_protocol_in_a_row_gets_no_mean(tmp_path):
    sweep = tmp_path / "sweep"
    run(sweep, 0, record(0, [0.5]))
    run(sweep, 1, record(1, [0.5], episodes=40))
    table, _ = report([sweep])
    (row,) = table.rows
    assert row.mean is None and row.notes == ["mixed protocol: episodes 40 (fold 1) vs 1000"]
    assert row.protocols == ["P1", "P2"]
    md = (sweep / "report.md").read_text()
    assert "| mixed protocol |" in md
    assert "- P2: pascal, 1-shot 1-way, 40 episodes x 1 seed," in md


def test_fusion_and_voting_folds_are_never_averaged_unmarked(tmp_path):
    def k_shot(fold, kshot, overrides=()):
        rec = record(fold, [0.5], overrides=overrides)
        rec["protocol"].update(shot=5, kshot=kshot, trained_shot=1)
        return rec

    one = tmp_path / "one"  # one row (eval.kshot not among the overrides), its folds mixed
    run(one, 0, k_shot(0, "fusion"))
    run(one, 1, k_shot(1, "voting"))
    (row,) = report([one])[0].rows
    assert row.mean is None and row.fbiou is None
    assert row.notes == ["mixed protocol: kshot voting (fold 1) vs fusion"]
    md = (one / "report.md").read_text()
    assert "| mixed protocol |" in md and "- P2: pascal, 5-shot 1-way" in md
    assert md.count(", K-shot by voting") == 1 and md.count(", K-shot by fusion") == 1
    two = tmp_path / "two"  # one row per choice, each with its own protocol and mean
    for i, kshot in enumerate(["fusion", "voting"]):
        for fold in (0, 1):
            run(two, 2 * i + fold, k_shot(fold, kshot, [f"eval.kshot={kshot}"]))
    table, _ = report([two])
    assert [(r.label, r.protocols) for r in table.rows] == [
        ("eval.kshot=fusion", ["P1"]), ("eval.kshot=voting", ["P2"]),
    ]  # fmt: skip
    assert all(r.mean is not None for r in table.rows)
    assert [p.settings["kshot"] for p in table.protocols] == ["fusion", "voting"]


def test_folds_evaluated_with_different_seeds_get_no_std(tmp_path):
    sweep = tmp_path / "sweep"
    for fold, seeds in ((0, [321, 322]), (1, [321, 323])):
        rec = record(fold, [0.5, 0.7], [0.4, 0.6])
        for entry, seed in zip(rec["seeds"], seeds, strict=True):
            entry["seed"] = seed
        rec["protocol"]["seeds"] = seeds
        run(sweep, fold, rec)
    table, _ = report([sweep])
    (row,) = table.rows
    # cells 60 ± 14.14 (FB-IoU 50 ± 14.14); no per-seed fold mean for seeds 322 and 323
    assert row.mean.mean == pytest.approx(60.0) and row.mean.std is None
    assert row.fbiou.mean == pytest.approx(50.0) and row.fbiou.std is None
    md = (sweep / "report.md").read_text()
    assert "| table4_saam | 60.00 ± 14.14 | 60.00 ± 14.14 | 60.00 | 50.00 |" in md
    with open(sweep / "report.csv", newline="", encoding="utf-8") as f:
        (line,) = csv.DictReader(f)
    assert (line["mean"], line["std"], line["fbiou"], line["fbiou_std"]) == ("60.0", "", "50.0", "")


def test_rows_of_different_protocols_reference_them(tmp_path):
    sweep = tmp_path / "sweep"
    for fold in (0, 1):
        run(sweep, fold, record(fold, [0.5], overrides=["model.alpha=1"]))
        run(sweep, 2 + fold, record(fold, [0.5], overrides=["model.alpha=2"], episodes=40))
    table, _ = report([sweep])
    assert [r.protocols for r in table.rows] == [["P1"], ["P2"]]
    assert all(r.mean is not None for r in table.rows)
    md = (sweep / "report.md").read_text()
    assert "| protocol | notes |" in md and "| P2 |" in md
    assert "- P1: pascal, 1-shot 1-way, 1000 episodes" in md


def test_labels_experiment_names_ignored_keys_and_novel_selection(tmp_path):
    sweep = tmp_path / "sweep"
    same = ["+model.extra=1", "test=true"]
    run(sweep, 0, record(0, [0.5], overrides=same, experiment="table4_saam", selected="novel"))
    run(sweep, 1, record(0, [0.4], overrides=same, experiment="table4_baseline"))
    table, _ = report([sweep])
    assert table.keys == ["experiment"]
    assert [r.label for r in table.rows] == ["table4_baseline", "table4_saam"]
    assert table.rows[1].overrides == {"experiment": "table4_saam", "model.extra": "1",
                                       "debug": "tiny"}  # fmt: skip
    assert table.rows[1].notes == ["checkpoint selected on novel classes (fold 0)"]
    assert table.rows[0].notes == []


def test_rows_follow_the_papers_position(tmp_path):
    sweep = tmp_path / "sweep"
    first = {**PAPER, "row": "Baseline", "position": 1}
    run(sweep, 0, record(0, [0.5], overrides=["model.alpha=1"], paper=PAPER, folds=1))
    run(sweep, 1, record(0, [0.5], overrides=["model.alpha=2"], paper=first, folds=1))
    table, _ = report([sweep])
    assert [r.label for r in table.rows] == [
        "model.alpha=2 (Baseline)",
        "model.alpha=1 (Baseline + SAAM)",
    ]


def test_paper_of_another_dataset_is_marked(tmp_path):
    sweep = tmp_path / "sweep"
    paper = {**PAPER, "class_miou": {"fold0": 80.2, "mean": 80.2}}
    run(sweep, 0, record(0, [0.4, 0.4], dataset="synthetic", paper=paper, folds=1))
    table, _ = report([sweep])
    (row,) = table.rows
    assert row.delta == pytest.approx(-40.2) and row.paper_mismatch == "synthetic ≠ pascal"
    md = (sweep / "report.md").read_text()
    assert "| 80.2 | -40.20 (synthetic ≠ pascal) |" in md


def test_old_records_corrupt_and_foreign_json(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    old = [record(0, [0.3]), record(0, [0.7]), record(1, [0.5])]
    for i, rec in enumerate(old):
        for key in ("format", "configuration", "paper", "evaluated_at"):
            del rec[key]
        del rec["protocol"]["folds"]
        write(sweep / f"r{i}" / "metrics.json", rec)
    os.utime(sweep / "r0" / "metrics.json", (2e9, 2e9))  # r0 is the later evaluation of fold 0
    os.utime(sweep / "r1" / "metrics.json", (1e9, 1e9))
    write(sweep / "wandb" / "wandb-summary.json", {"_step": 1})
    (sweep / "broken" / "metrics.json").parent.mkdir()
    (sweep / "broken" / "metrics.json").write_text('{"protocol": ')
    write(sweep / "nan" / "metrics.json", record(0, [float("nan")]))
    table, _ = report([sweep], tmp_path)
    (row,) = table.rows
    assert row.label == "all runs" and table.folds == [0, 1]
    assert row.cells[0].class_miou.mean == pytest.approx(30.0) and row.cells[0].records == 2
    assert row.mean.mean == pytest.approx(40.0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"warning: {sweep / 'broken' / 'metrics.json'}: unreadable JSON")
    assert err[1] == (
        f"warning: {sweep / 'nan' / 'metrics.json'}: unusable evaluation record "
        "(seed 321 has no finite class_miou and fbiou); skipped"
    )


def test_reads_only_record_files_of_run_folders_two_deep(tmp_path):
    """A run, sweep or table directory: metrics.json, eval/*.json and failed.json of it and of
    its folders two deep. Other file names, hidden folders and deeper folders are not read."""
    table = tmp_path / "table"
    write(table / "exp" / "fold0" / "metrics.json", record(0, [0.5], folds=2))
    write(table / "exp" / "fold1" / "eval" / "best-fold1.json", record(1, [0.7], folds=2))
    write(table / "exp" / "fold1" / "other.json", record(1, [0.1], folds=2))
    write(table / ".hidden" / "metrics.json", record(1, [0.2], folds=2))
    write(table / "a" / "b" / "c" / "metrics.json", record(1, [0.3], folds=2))
    sources = sorted(Path(r["source"]).relative_to(table).as_posix() for r in load_records([table]))
    assert sources == ["exp/fold0/metrics.json", "exp/fold1/eval/best-fold1.json"]


def test_a_directory_whose_records_lie_deeper_is_refused_and_nothing_written(tmp_path, capsys):
    """`sdaanet-report /tmp`: records of runs somewhere deep below (pytest's, another tool's)
    are not searched for, the directory is refused with one line, and nothing is written."""
    write(
        tmp_path / "pytest-of-me" / "pytest-1" / "test0" / "run" / "metrics.json", record(0, [0.5])
    )
    assert exit_code(main, [tmp_path]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        line.startswith(f"error: {tmp_path}: no evaluation records")
        and "run, sweep or table" in line
    )
    assert not [p for p in tmp_path.iterdir() if p.is_file()]


def test_load_records_accepts_files_and_output_goes_beside_them(tmp_path):
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    run(a, 0, record(0, [0.5], folds=1))
    run(b, 0, record(0, [0.6], folds=1, overrides=["model.alpha=1"]))
    file = next(a.glob("*/metrics.json"))
    (rec,) = load_records([file])
    assert rec["source"] == str(file) and rec["copies"] == []
    assert report([file])[1][0] == file.parent / "report.md"
    with pytest.raises(ReportError, match="runs: not a run, sweep or table directory"):
        report([a, b])  # their common parent: a folder sdaanet did not make
    table, written = report([a, b], tmp_path / "both")
    assert written[0] == tmp_path / "both" / "report.md" and len(table.rows) == 2
    _, written = report([a], out_dir=tmp_path / "out")
    assert written[0] == tmp_path / "out" / "report.md"


def test_the_report_goes_only_into_a_directory_sdaanet_made(tmp_path, capsys):
    """A run (.hydra/), a sweep or table (multirun.yaml) or an earlier report's directory takes
    the report; another, such as /tmp holding runs, is refused with one line, nothing written,
    unless --out says where."""
    write(tmp_path / "p8" / "run1" / "metrics.json", record(0, [0.5], folds=1))
    (tmp_path / "p8" / "run1" / ".hydra").mkdir()
    assert exit_code(main, [tmp_path]) == 2
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert not out and line.startswith(f"error: {tmp_path}: not a run, sweep or table directory")
    assert "--out" in line and not list(tmp_path.glob("report*"))
    assert exit_code(main, [tmp_path, "--out", tmp_path / "out"]) == 0
    assert exit_code(main, [tmp_path / "p8" / "run1"]) == 0  # a run directory
    assert (tmp_path / "p8" / "run1" / "report.md").is_file()


def test_cli_prints_the_table(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    alpha_beta_sweep(sweep)
    assert exit_code(main, [sweep, "--out", tmp_path / "out"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "| configuration | fold 0 | fold 1 | mean | FB-IoU | paper | Δ | notes |"
    assert out[-1] == "wrote " + ", ".join(
        str(tmp_path / "out" / n) for n in ("report.md", "report.csv", "report.json", "heatmap.png")
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nowhere", "no such file or directory"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no evaluation records"),
    ],
)
def test_cli_bad_path_is_one_error_line(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert exit_code(main, [path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and message in err[0]


def test_cli_unwritable_out_is_one_error_line(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    run(sweep, 0, record(0, [0.5], folds=1))
    (tmp_path / "file").write_text("")
    assert exit_code(main, [sweep, "--out", tmp_path / "file"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write the report into")


def test_python_m_runs(tmp_path):
    sweep = tmp_path / "sweep"
    run(sweep, 0, record(0, [0.5], folds=1))
    done = subprocess.run([sys.executable, "-m", "sdaanet.report", str(sweep)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("wrote ")


RECORDS = Path(__file__).parent / "golden" / "records"


@pytest.mark.parametrize("written_by", ["sweep", "format0"])
def test_records_of_earlier_versions_give_the_same_report(tmp_path, capsys, written_by):
    """tests/golden/records/: `sweep` as `sdaanet-train -m` wrote it (record format 2, a two-fold
    two-seed cell and a failed job's failed.json); `format0` the same evaluations with only the
    keys the first eval records had (no format, configuration, evaluated_at, protocol.folds). The
    table printed, report.md, report.csv and (where no file time enters it) report.json are those
    the code gave when the fixture was written (README there)."""

    def text(path: Path) -> str:
        return path.read_text(encoding="utf-8").replace(str(RECORDS), "RECORDS")

    assert exit_code(main, [RECORDS / written_by, "--out", tmp_path]) == 0
    printed = capsys.readouterr().out.replace(str(RECORDS), "RECORDS")
    assert printed.replace(str(tmp_path), "OUT") == text(RECORDS / f"{written_by}.printed.md")
    assert text(tmp_path / "report.md") == text(RECORDS / f"{written_by}.report.md")
    csv_bytes = (tmp_path / "report.csv").read_bytes()
    assert csv_bytes == (RECORDS / f"{written_by}.report.csv").read_bytes()
    if written_by == "sweep":  # format0's evaluated_at is its files' time
        assert text(tmp_path / "report.json") == text(RECORDS / "sweep.report.json")
