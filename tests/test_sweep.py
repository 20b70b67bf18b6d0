"""Sweeps and their outputs: job folders every command takes as they are, a failed job that
leaves a record and lets the sweep go on, and a bad setting refused once before any folder."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from sdaanet import compose_config
from sdaanet.cli import entry_point
from sdaanet.errors import ConfigError, DataConfigError, NonFiniteLossError
from sdaanet.reporting.write import report
from sdaanet.sweep import FAILURE_FILE, JobFailedError, finish_sweep, task
from sdaanet.validate import _sweep_values, precheck

OLD_JOB = "0_data.fold=0,data=synthetic"  # how Hydra's default named a sweep's job folder
ROOT = Path(__file__).resolve().parents[1]


def _ckpt_in(folder: Path, tiny_ckpt: Path) -> Path:
    ckpt = folder / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(tiny_ckpt, ckpt)
    return ckpt


def _value(arg: str) -> str:
    """The value Hydra's override parser reads from `key=value`."""
    return OverridesParser.create().parse_override(arg).value()


# ---------------------------------------------------------------- paths every command takes
def test_old_job_folder_path_is_refused_with_how_to_quote_it(tmp_path, tiny_ckpt, capsys):
    ckpt = _ckpt_in(tmp_path / OLD_JOB, tiny_ckpt)
    with pytest.raises(SystemExit) as exc:
        entry_point(precheck)("eval", [f"ckpt_path={ckpt}"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        f"error: ckpt_path={ckpt} contains '=' or ',', which Hydra's override grammar cannot "
        f"take unquoted; quote it: ckpt_path=\"'{ckpt}'\"\n"
    )
    cfg = precheck("eval", [f"ckpt_path='{ckpt}'"])  # the quoted form the error suggests
    assert cfg.ckpt_path == str(ckpt)


def test_a_comma_in_a_single_runs_path_is_refused_not_read_as_a_sweep(tmp_path, tiny_ckpt):
    ckpt = _ckpt_in(tmp_path / "a,b", tiny_ckpt)
    with pytest.raises(ConfigError, match=rf"contains ','.*quote it: ckpt_path=\"'{ckpt}'\""):
        precheck("eval", [f"ckpt_path={ckpt}"])


def test_new_job_folder_is_taken_unquoted(tmp_path, tiny_ckpt):
    """The folder name Hydra composes for a job of `data.fold=0,1 model.alpha=10,50 ...`."""
    overrides = ["data.fold=0", "data=synthetic", "model.alpha=10", "eval.seeds=[321,322]",
                 "+data.root=/x/y z", f"ckpt_path={tmp_path}", "debug=tiny"]  # fmt: skip
    cfg = compose_config(overrides, with_hydra=True)
    with open_dict(cfg):
        cfg.hydra.job.num = 3
    HydraConfig.instance().set_config(cfg)
    try:
        subdir = str(cfg.hydra.sweep.subdir)
    finally:
        HydraConfig.instance().cfg = None
    # `-` after each key, `+` between overrides, anything else Hydra or a shell would parse: `_`
    assert (
        subdir
        == "3_+data.root-_x_y_z+data.fold-0+data-synthetic+eval.seeds-_321_322_+model.alpha-10"
    )
    ckpt = _ckpt_in(tmp_path / "sweep" / subdir, tiny_ckpt)
    assert _value(f"ckpt_path={ckpt}") == str(ckpt)
    assert precheck("eval", [f"ckpt_path={ckpt}"]).ckpt_path == str(ckpt)


def test_long_job_folder_names_are_cut_with_a_hash():
    from sdaanet.config import _job_dirname

    name = _job_dirname("+".join(f"model.key{i}-{i}" for i in range(40)))
    assert len(name) <= 160 and name.startswith("model.key0-0+model.key1-1")
    assert name != _job_dirname("+".join(f"model.key{i}-{i}" for i in range(41)))


@pytest.mark.parametrize(
    ("target", "variable", "key"),
    [("eval", "CKPT", "ckpt_path"), ("sweep", "SWEEP_DIR", "hydra.sweep.dir")],
)
def test_makefile_quotes_the_paths_it_passes(tmp_path, target, variable, key):
    path = f"{tmp_path}/{OLD_JOB}/checkpoints/last.ckpt"
    out = subprocess.run(
        ["make", "-n", target, f"{variable}={path}"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if "python -m sdaanet." in x).rstrip("\\ ")
    (arg,) = [a for a in shlex.split(line) if a.startswith(f"{key}=")]
    assert _value(arg) == path


def test_table_passes_its_directory_quoted():
    from sdaanet.table import commands

    root = Path("/x/a=b,c")  # e.g. --dir, or a checkout in such a folder
    train, evaluate = commands("V", [], root, [0])
    (sweep_dir,) = [a for a in train if a.startswith("hydra.sweep.dir=")]
    (ckpt,) = [a for a in evaluate if a.startswith("ckpt_path=")]
    assert _value(sweep_dir) == str(root)
    assert _value(ckpt) == f"{root}/${{paper.trained_as}}/fold${{data.fold}}"


# -------------------------------------------------------------- a bad setting, refused once
D = "paths.data_dir={}"


def test_multirun_checks_every_combination(tmp_path):
    data = D.format(tmp_path / "data")
    precheck("train", ["-m", "debug=tiny", data, "data.fold=0,1", "model.alpha=5,10"])
    with pytest.raises(DataConfigError) as exc:  # only the second fold is bad
        precheck("train", ["--multirun", "debug=tiny", data, "data.fold=0,7", "shot=1,2"])
    assert str(exc.value) == (
        "data config: fold must be an integer in 0..3, got 7 (in the sweep's job data.fold=7 "
        "shot=1)"
    )
    with pytest.raises(ConfigError, match=r"data.ways=0 must be a positive integer"):
        precheck("train", ["-m", "debug=tiny", data, "data.ways=range(0,2)"])


def test_multirun_checks_the_search_space_bounds_of_the_optuna_sweeper(tmp_path):
    tune = ["-m", "experiment=tune_alpha_beta", "debug=tiny", D.format(tmp_path / "data")]
    precheck("train", [*tune, "data.val_episodes=range(1,9)"])
    with pytest.raises(ConfigError) as exc:  # a range's lower end, next to the experiment's space
        precheck("train", [*tune, "data.val_episodes=range(0,9)"])
    assert str(exc.value) == (
        "data.val_episodes=0 must be a positive integer, e.g. data.val_episodes=1 (in the "
        "sweep's job model.alpha=5.0 model.beta=0.05 data.val_episodes=0)"
    )
    with pytest.raises(ConfigError, match=r"^tuning with the optuna sweeper must select on base"):
        precheck("train", [*tune, "data.selection=novel"])


def test_sweep_values_expand_lists_and_bound_intervals():
    parse = OverridesParser.create().parse_override
    assert _sweep_values(parse("model.alpha=tag(log, interval(5.0, 500.0))"), True) == [
        "5.0",
        "500.0",
    ]
    assert _sweep_values(parse("shot=range(1,4)"), True) == ["1", "2", "3"]
    assert _sweep_values(parse("shot=range(1,4)"), False) == ["1", "3"]
    assert _sweep_values(parse("data=a,'b c'"), True) == ["a", "'b c'"]
    assert _sweep_values(parse("eval.seeds=[1,2]"), True) == ["[1,2]"]


def test_bad_multirun_is_one_line_and_makes_no_folder(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "sdaanet.train", "-m", "debug=tiny", D.format(tmp_path / "data"),
         "data.ways=1,0", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: data.ways=0 must be a positive integer, e.g. data.ways=1 (in the sweep's job "
        "data.ways=0)"
    )
    assert "Traceback" not in proc.stderr
    assert not sweep.exists()


# ----------------------------------------------------------------- a failed job, recorded
@pytest.fixture
def multirun_job(tmp_path):
    """A Hydra multirun job of `model.alpha=nan data.fold=2` (the basic sweeper), in tmp_path."""

    def start(sweeper: str | None = None, mode: RunMode = RunMode.MULTIRUN) -> Path:
        cfg = compose_config(["debug=tiny", "model.alpha=nan", "data.fold=2"], with_hydra=True)
        output_dir = tmp_path / "3_data.fold-2+model.alpha-nan"
        output_dir.mkdir()
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.runtime.output_dir = str(output_dir)
            if sweeper:
                cfg.hydra.sweeper._target_ = sweeper
        HydraConfig.instance().set_config(cfg)
        return output_dir

    yield start
    HydraConfig.instance().cfg = None


def _nan(cfg):
    raise NonFiniteLossError("training step 1: non-finite loss term main=nan")


def test_failed_job_writes_its_record_and_the_basic_sweep_goes_on(multirun_job, capsys):
    job = multirun_job()
    (job / FAILURE_FILE).write_text("{}")  # an earlier run's: replaced
    assert task(_nan)(OmegaConf.create({"data": {"fold": 2}})) is None  # no raise: next job
    assert capsys.readouterr().err == "error: training step 1: non-finite loss term main=nan\n"
    record = json.loads((job / FAILURE_FILE).read_text())
    assert record["reason"] == "training step 1: non-finite loss term main=nan"
    assert record["error"] == "NonFiniteLossError"
    assert record["fold"] == 2 and record["run_dir"] == str(job)
    assert record["configuration"]["overrides"] == ["debug=tiny", "model.alpha=nan", "data.fold=2"]
    age = datetime.now(timezone.utc) - datetime.fromisoformat(record["failed_at"])
    assert timedelta(0) <= age < timedelta(minutes=1)
    # the job runs again and succeeds: its old failure record goes
    assert task(lambda cfg: 0.5)(OmegaConf.create({})) == 0.5
    assert not (job / FAILURE_FILE).exists()


def test_failed_job_is_a_failed_trial_for_the_optuna_sweeper(multirun_job):
    job = multirun_job("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    with pytest.raises(JobFailedError, match="non-finite loss"):  # an Exception: Hydra's FAILED
        task(_nan)(OmegaConf.create({}))
    assert json.loads((job / FAILURE_FILE).read_text())["error"] == "NonFiniteLossError"


def test_single_run_failure_is_one_line_and_exit_2(multirun_job, capsys):
    job = multirun_job(mode=RunMode.RUN)
    with pytest.raises(SystemExit) as exc:
        task(_nan)(OmegaConf.create({}))
    assert exc.value.code == 2
    assert capsys.readouterr().err == "error: training step 1: non-finite loss term main=nan\n"
    assert not (job / FAILURE_FILE).exists()


def test_sweep_summary_counts_this_sweeps_failed_jobs(tmp_path, monkeypatch, capsys):
    import sdaanet.sweep as sweep_module

    def job(name: str, failed: bool, age: float = 0.0) -> Path:
        folder = tmp_path / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text("[]")
        if failed:
            (folder / FAILURE_FILE).write_text("{}")
        if age:
            os.utime(folder / ".hydra" / "overrides.yaml", (time.time() - age,) * 2)
        return folder

    job("0_old", failed=True, age=3600)  # an earlier sweep's, in the same folder: not counted
    job("0_model.alpha-5", failed=False)
    bad = job("1_model.alpha-nan", failed=True)
    monkeypatch.setattr(sweep_module, "_started", {"dir": tmp_path, "time": time.time() - 5})
    assert finish_sweep() == 1
    assert capsys.readouterr().err == f"sweep: 1 of 2 jobs failed: {bad} (each holds failed.json)\n"
    for i in range(101):
        job(f"{i + 2}_x", failed=True)
    assert finish_sweep() == 100  # the exit status is capped


def test_report_shows_a_failed_cell_with_its_reason(tmp_path):
    from tests.test_report import record, run

    sweep = tmp_path / "sweep"
    a5, nan = ["model.alpha=5"], ["model.alpha=nan"]
    run(sweep, 0, record(0, [0.40, 0.42], overrides=a5))
    run(sweep, 1, record(1, [0.30, 0.30], overrides=a5))
    run(sweep, 2, record(0, [0.50, 0.50], overrides=nan))
    configuration = {
        "experiment": "table4_saam",
        "overrides": ["experiment=table4_saam", *nan, "debug=tiny"],
    }
    failure = {"format": 1, "failed_at": "2026-12-02T02:00:00+00:00", "fold": 1, "run_dir": "x",
               "reason": "training step 1: non-finite loss term main=nan",
               "error": "NonFiniteLossError", "configuration": configuration}  # fmt: skip
    (sweep / "3_nan").mkdir()
    (sweep / "3_nan" / FAILURE_FILE).write_text(json.dumps(failure))
    table, _ = report([sweep])
    five, bad = table.rows
    assert five.mean.mean == pytest.approx(35.5) and not five.failed
    assert list(bad.failed) == [1] and bad.failed[1].reason == failure["reason"]
    assert bad.mean is None and bad.missing == []
    md = (sweep / "report.md").read_text()
    # the mean over the folds it has, labelled; the failed fold in the notes
    assert (
        "| model.alpha=nan | 50.00 ± 0.00 | failed | 50.00 ± 0.00 (fold 0 of 2) | 50.00 ± 0.00 "
        "(fold 0 of 2) | failed fold 1 |"
    ) in md
    assert (
        f"- model.alpha=nan, fold 1: NonFiniteLossError: {failure['reason']} "
        f"(`{sweep / '3_nan' / FAILURE_FILE}`)"
    ) in md
    saved = json.loads((sweep / "report.json").read_text())
    assert saved["rows"][1]["failed"]["1"]["error"] == "NonFiniteLossError"
    csv_text = (sweep / "report.csv").read_text()
    assert f"failed fold 1: {failure['reason']}" in csv_text
    # a sweep whose every job failed still has its report
    only = tmp_path / "only"
    shutil.copytree(sweep / "3_nan", only / "3_nan")
    shutil.copy(sweep / "multirun.yaml", only)
    (row,) = report([only])[0].rows
    assert row.cells == {} and list(row.failed) == [1]
