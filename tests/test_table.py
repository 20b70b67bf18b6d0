"""`make table TABLE=...`: every cell of a paper table as one multirun, resumable, reported."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sdaanet.table import CELL_DIR, commands, table_dir

REPO = Path(__file__).resolve().parents[1]
TINY = ["data=synthetic", "debug=tiny"]


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "SDAANET_ROOT": str(root), "NO_ALBUMENTATIONS_UPDATE": "1",
            "WANDB_MODE": "offline"}  # fmt: skip


def _rows(out: str, prefix: str) -> list[list[str]]:
    """The cells of the rows of the printed report's main (first) table whose label starts
    with `prefix`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {prefix}"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_commands_train_the_trained_rows_and_evaluate_the_others_from_their_checkpoint():
    root = Path("/x")
    (train,) = commands("IV", TINY, root, [0, 1, 2, 3])
    assert train[1:4] == ["-m", "sdaanet.train", "-m"]
    assert "experiment=table4_baseline,table4_saam,table4_sdpm,table4_sdaanet" in train
    assert {"data.fold=0,1,2,3", "hydra.sweep.dir='/x'", f"hydra.sweep.subdir={CELL_DIR}",
            "resume=true", "test=true"} <= set(train)  # fmt: skip
    assert train[-2:] == TINY
    train, evaluate = commands("V", [], root, [0])
    assert "experiment=table5_single" in train
    assert evaluate[1:4] == ["-m", "sdaanet.eval", "-m"]
    assert "experiment=table5_multiscale" in evaluate
    assert "ckpt_path='/x/${paper.trained_as}/fold${data.fold}'" in evaluate
    assert len(commands("II", [], root, [0])[1][4].split(",")) == 4  # the four † rows


@pytest.mark.parametrize("table", ["II", "V"])
def test_evaluation_only_rows_keep_the_users_overrides(table):
    user = [*TINY, "eval.seeds=[1]", "data.val_episodes=4"]
    train, evaluate = commands(table, user, Path("/x"), [0])
    assert evaluate[1:4] == ["-m", "sdaanet.eval", "-m"]
    assert train[-len(user) :] == user and evaluate[-len(user) :] == user  # last: they win


def test_each_set_of_overrides_has_its_own_table_directory(tmp_path):
    a, b = table_dir("IV", TINY), table_dir("IV", [])
    assert a.name == "data-synthetic_debug-tiny" and b.name == "default" and a.parent == b.parent
    long = table_dir("IV", [f"paths.data_dir=/very/long/{'x' * 100}"])
    assert len(long.name) <= 71 and "/" not in long.name


@pytest.mark.slow  # 40-75 s on 2 cores
def test_make_table_iv_trains_reports_and_skips_every_finished_cell(tmp_path):
    """The acceptance command on the synthetic data: 4 rows x 4 folds + mean; run again, no
    training step runs (every checkpoint is left byte for byte)."""
    cmd = ["make", "-s", "-C", str(REPO), "table", "TABLE=IV", f"ARGS={' '.join(TINY)}"]
    first = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _rows(first.stdout, "table4_")
    assert [r[0].split()[0] for r in rows] == [
        "table4_baseline", "table4_saam", "table4_sdpm", "table4_sdaanet",
    ]  # fmt: skip
    for row in rows:  # label, fold 0-3, mean (each "x ± y"), FB-IoU, paper, delta, notes
        assert all(" ± " in cell for cell in row[1:6]), row
    assert [r[7] for r in rows] == ["60.4", "61.6", "62.0", "62.9"]  # the paper: node's means
    # debug=tiny: plumbing-only, said above the table, in every row, never a Δ to the paper
    assert "**Plumbing-only run: not a result** (every row" in first.stdout
    assert all(r[8] == "none: plumbing-only" and r[9].startswith("plumbing-only") for r in rows)
    cells = sorted((tmp_path / "logs" / "tables" / "IV").glob("*/table4_*/fold*"))
    assert len(cells) == 16
    ckpts = {p: p.read_bytes() for c in cells for p in (c / "checkpoints").iterdir()}
    mtimes = {p: p.stat().st_mtime_ns for p in ckpts}

    again = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped: ") == 16
    assert "Trainer.fit" not in again.stdout + again.stderr
    assert {p: p.read_bytes() for p in ckpts} == ckpts
    assert {p: p.stat().st_mtime_ns for p in ckpts} == mtimes
    assert _rows(again.stdout, "table4_") == rows


@pytest.mark.slow  # 20-45 s on a 2-core AVX2 machine
@pytest.mark.parametrize("folds", ["0"])
def test_an_evaluation_only_row_evaluates_the_checkpoint_of_the_row_it_is_trained_as(
    tmp_path, folds
):
    out = tmp_path / "V"
    cmd = [sys.executable, "-m", "sdaanet.table", "V", *TINY, "eval.seeds=[1]",
           "--dir", str(out), "--folds", folds]  # fmt: skip
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    single = json.loads((out / "table5_single" / "fold0" / "metrics.json").read_text())
    multi = json.loads((out / "table5_multiscale" / "fold0" / "metrics.json").read_text())
    assert multi["checkpoint"] == single["checkpoint"]
    assert single["protocol"]["multiscale"] is None
    assert multi["protocol"]["multiscale"] == [321, 473]
    assert multi["configuration"]["experiment"] == "table5_multiscale"
    assert not (out / "table5_multiscale" / "fold0" / "checkpoints").exists()  # nothing trained
    rows = _rows(done.stdout, "table5_")
    assert [r[0].split()[0] for r in rows] == ["table5_single", "table5_multiscale"]
    # label, fold 0-3, mean, FB-IoU, paper, Δ, notes: fold 0's mean labelled as such, no Δ
    assert all(r[5].endswith("(fold 0 of 4)") and r[8] == "none: plumbing-only" for r in rows)
    assert all("missing folds 1, 2, 3" in r[-1] for r in rows)


def test_the_echoed_commands_can_be_copied_and_run(tmp_path, monkeypatch, capsys):
    """Each multirun is echoed as a shell command line that runs it: the interpreter first,
    every argument quoted as a shell needs (the sweep dir's quotes, `${...}`)."""
    import sdaanet.reporting.write
    from sdaanet import table

    ran = []

    def done(cmd, check):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(table.subprocess, "run", done)
    monkeypatch.setattr(sdaanet.reporting.write, "print_report", lambda paths: None)
    table.run_table("V", TINY, tmp_path / "V", [0])
    out = capsys.readouterr().out.splitlines()
    echoed = [shlex.split(line.removeprefix("+ ")) for line in out if line.startswith("+ ")]
    assert echoed == ran and len(ran) == 2 and ran[0][0] == sys.executable


def test_an_unknown_table_is_one_line(capsys):
    from tests.helpers.cli import exit_code

    from sdaanet.table import main

    assert exit_code(main, ["III"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: unknown table 'III': choose one of I, II, IV, V, VI, VII")


@pytest.mark.slow  # 40-75 s on 2 cores
def test_make_sweep_ends_with_the_report_and_its_heatmap(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = ["make", "-s", "-C", str(REPO), "sweep", "DATA=synthetic", "ALPHAS=5,10",
           "BETAS=0.5,1.0", "ARGS=debug=tiny eval.seeds=[1]", f"SWEEP_DIR={sweep}"]  # fmt: skip
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(done.stdout, "model.alpha=")
    assert [r[0] for r in rows] == [
        "model.alpha=5 model.beta=0.5", "model.alpha=5 model.beta=1.0",
        "model.alpha=10 model.beta=0.5", "model.alpha=10 model.beta=1.0",
    ]  # fmt: skip
    assert all(" ± " in cell for r in rows for cell in r[1:6])  # 4 folds and their mean
    from PIL import Image

    with Image.open(sweep / "heatmap.png") as image:
        assert image.size[0] > 100 and image.size[1] > 100
    assert {"report.md", "report.csv", "report.json"} <= {p.name for p in sweep.iterdir()}
