"""Sweeps beyond one process (docs/cluster.md): `hydra/launcher=slurm` maps onto the Trainer and
into sbatch, `hydra/launcher=submitit_local` runs a sweep as subprocesses that `sdaanet.report`
tables, and `experiment=tune_alpha_beta` tunes on base classes only."""

from __future__ import annotations

import math
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from sdaanet import compose_config

SLURM = [
    "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.nodes=2",
    "hydra.launcher.gpus_per_node=4", "hydra.launcher.account=proj42",
]  # fmt: skip
TINY = ["debug=tiny", "data=synthetic"]


def _train(args: list[str], tmp: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`python -m sdaanet.train ARGS` in `tmp`, one thread per process (2-core machines)."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "offline"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
    return subprocess.run(
        [sys.executable, "-m", "sdaanet.train", *args],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=timeout,
    )  # fmt: skip


def _printed(args: list[str], tmp: Path) -> dict[str, Any]:
    proc = _train(args, tmp, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def slurm_job(tmp_path_factory) -> dict[str, Any]:
    """The job config `--cfg job --resolve` prints under hydra/launcher=slurm."""
    tmp = tmp_path_factory.mktemp("slurm_job")
    return _printed([*SLURM, f"paths.output_dir={tmp}/run", "--cfg", "job", "--resolve"], tmp)


@pytest.fixture(scope="module")
def slurm_hydra(tmp_path_factory) -> dict[str, Any]:
    """The Hydra config `--cfg hydra` prints under hydra/launcher=slurm."""
    tmp = tmp_path_factory.mktemp("slurm_hydra")
    return _printed([*SLURM, "--cfg", "hydra"], tmp)["hydra"]


def test_slurm_launcher_sets_trainer_nodes_and_devices(slurm_job):
    assert slurm_job["trainer"]["num_nodes"] == 2
    assert slurm_job["trainer"]["devices"] == 4


def test_slurm_launcher_keys(slurm_hydra):
    launcher = slurm_hydra["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["partition"], launcher["account"]) == ("gpu", "proj42")
    assert (launcher["nodes"], launcher["gpus_per_node"]) == (2, 4)
    assert launcher["tasks_per_node"] == "${.gpus_per_node}"  # one task per GPU, tied
    for key in ("cpus_per_task", "mem_gb", "timeout_min", "signal_delay_s"):
        assert isinstance(launcher[key], int) and launcher[key] > 0, key
    assert launcher["max_num_timeout"] >= 1  # a timed-out job is requeued


class _Job:
    def results(self) -> list[None]:
        return [None]


def test_slurm_sbatch_script_and_requeue(slurm_hydra, tmp_path, monkeypatch):
    """The plugin's own launcher turns our config into this sbatch script (a fake `srun` on the
    PATH lets submitit build it without a cluster); a timed-out job resubmits itself."""
    import submitit
    from hydra.utils import instantiate
    from lightning.fabric.plugins.environments import SLURMEnvironment

    lightning_requeue_signal = SLURMEnvironment().requeue_signal
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executors: list[Any] = []

    def map_array(self, fn, *args):  # submitit's submission, captured
        executors.append(self)
        return [_Job() for _ in args[0]]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    node = OmegaConf.create(slurm_hydra["launcher"])
    node.submitit_folder, node.name = f"{tmp_path}/.submitit/%j", "train"
    launcher = instantiate(node)
    sweep = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    launcher.setup(hydra_context=None, task_function=lambda cfg: None, config=sweep)
    launcher.launch([["data.fold=0"], ["data.fold=1"]], initial_job_idx=0)
    (executor,) = executors
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)$", script, flags=re.M))
    conf = slurm_hydra["launcher"]
    assert sbatch["nodes"] == "2" and sbatch["ntasks-per-node"] == "4"
    assert sbatch["gpus-per-node"] == "4" and sbatch["partition"] == "gpu"
    assert sbatch["account"] == "proj42" and sbatch["time"] == str(conf["timeout_min"])
    assert sbatch["cpus-per-task"] == str(conf["cpus_per_task"])
    assert sbatch["mem"] == f"{conf['mem_gb']}GB"
    assert sbatch["signal"] == f"USR2@{conf['signal_delay_s']}"
    assert executor._executor.max_num_timeout == conf["max_num_timeout"]
    # one requeue mechanism: submitit's USR2 handler resubmits the same job (same overrides and
    # job number, hence the same job directory); Lightning's SIGUSR1 auto-requeue never fires
    args = (["data.fold=1"], "hydra.sweep.dir", 1, "id", {})
    resubmission = launcher.checkpoint(*args)
    assert resubmission.function is launcher and resubmission.args == args
    assert lightning_requeue_signal == signal.SIGUSR1 != signal.SIGUSR2


@pytest.mark.parametrize("trainer,devices", [("default", 1), ("gpu", 1), ("ddp", 2), ("cpu", 1)])
def test_plain_runs_keep_trainer_nodes_and_devices(trainer, devices):
    cfg = compose_config([f"trainer={trainer}"])
    assert (cfg.trainer.num_nodes, cfg.trainer.devices) == (1, devices)


@pytest.mark.slow  # 20-45 s on a 2-core AVX2 machine
def test_submitit_local_sweep_reports_rows_by_folds(tmp_path):
    """2 alphas x 2 folds as submitit subprocesses, each evaluated over 2 seeds, in one table."""
    from sdaanet.reporting.write import report

    sweep = tmp_path / "sweep"
    proc = _train(
        [
            "-m", "hydra/launcher=submitit_local", *TINY, "data.fold=0,1", "model.alpha=5,10",
            f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path}/data", "eval.seeds=[321,322]",
            "hydra.launcher.timeout_min=10",
        ],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 4 and all((j / "checkpoints" / "last.ckpt").is_file() for j in jobs)
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 4  # 4 subprocess jobs
    table, _ = report([sweep])
    assert table.keys == ["model.alpha"]
    assert sorted(row.overrides["model.alpha"] for row in table.rows) == ["10", "5"]
    for row in table.rows:
        assert sorted(row.cells) == [0, 1]
        for cell in row.cells.values():
            assert [s["seed"] for s in cell.per_seed] == [321, 322]
            assert math.isfinite(cell.class_miou.mean) and 0 <= cell.class_miou.mean <= 100


def _task_pids(marker: str) -> list[int]:
    """Processes running a submitit task (`submitit.core._submit`) whose command names `marker`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in argv and any(marker.encode() in a for a in argv):
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.slow  # 20-45 s on a 2-core AVX2 machine
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_requeued_job_resumes_from_last_checkpoint(tmp_path):
    """USR2 (what SLURM sends `signal_delay_s` before the wall time) mid-training: submitit
    requeues the same job, which reruns in its directory and continues from last.ckpt."""
    import torch

    sweep, epochs = tmp_path / "sweep", 10
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "offline"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [
        "-m", "hydra/launcher=submitit_local", *TINY, f"trainer.max_epochs={epochs}",
        f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path}/data", "eval.seeds=[321]",
        "hydra.launcher.timeout_min=10",
    ]  # fmt: skip
    with open(tmp_path / "out.txt", "w") as out:
        master = subprocess.Popen(
            [sys.executable, "-m", "sdaanet.train", *args], cwd=tmp_path, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while not list(sweep.glob("0_*/checkpoints/last.ckpt")):
                assert master.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
            (task,) = _task_pids(str(sweep))
            os.kill(task, signal.SIGUSR2)
            assert master.wait(timeout=240) == 0, (tmp_path / "out.txt").read_text()[-3000:]
        finally:
            master.kill()
    (job,) = sweep.glob("0_*")
    logs = "".join(f.read_text() for f in sweep.glob(".submitit/*/*_log.*"))
    assert "Requeued job" in logs  # by submitit, once
    assert f"resuming from {job}/checkpoints/last.ckpt" in logs
    last = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == epochs - 1
    assert (job / "metrics.json").is_file()
    assert not list(job.rglob("hpc_ckpt_*.ckpt"))  # Lightning's own requeue stayed out of it


def test_default_sweep_dir_is_the_same_in_a_submitit_job(tmp_path):
    """A submitit job (and its requeued rerun) resolves `hydra.sweep.dir` from the launcher's
    pickled config in another process: it must name the launcher's directory, not its own."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sdaanet.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"paths.log_dir={tmp_path}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    here = str(cfg.hydra.sweep.dir)
    (tmp_path / "cfg.pkl").write_bytes(pickle.dumps(cfg))
    code = (
        "import pickle, sys, sdaanet; from hydra.core.utils import setup_globals; setup_globals(); "
        "print(pickle.load(open(sys.argv[1], 'rb')).hydra.sweep.dir)"
    )
    job = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cfg.pkl")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert job.stdout.strip() == here


def _bounds(spec: str) -> tuple[float, float]:
    low, high = re.search(r"interval\(([^,]+),([^)]+)\)", spec).groups()
    return float(low), float(high)


def test_optuna_tunes_alpha_beta_on_base_classes(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _train(
        [
            "-m", "experiment=tune_alpha_beta", *TINY, "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path}/data",
        ],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = results["best_value"]
    assert isinstance(best, float) and math.isfinite(best) and 0 <= best <= 1
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(trials) == 2
    space = yaml.safe_load((trials[0] / ".hydra" / "hydra.yaml").read_text())["hydra"]
    space = space["sweeper"]["params"]
    assert sorted(results["best_params"]) == sorted(space) == ["model.alpha", "model.beta"]
    for key, value in results["best_params"].items():
        low, high = _bounds(space[key])
        assert low <= value <= high, (key, value)
    scores = []
    for trial in trials:  # every trial validated on held-out base-class images, never tested
        cfg = OmegaConf.load(trial / ".hydra" / "config.yaml")
        assert cfg.data.selection == "base" and cfg.test is False
        hparams = yaml.safe_load((trial / "csv" / "hparams.yaml").read_text())
        assert hparams["selection"] == "base" and hparams["n_val_classes"] == 15  # base classes
        assert not (trial / "metrics.json").exists()
        lines = (trial / "csv" / "metrics.csv").read_text().splitlines()
        head = lines[0].split(",").index("val/class_miou")
        scores += [float(c[head]) for c in (x.split(",") for x in lines[1:]) if c[head]]
    assert best == pytest.approx(max(scores))  # the objective is that validation score


def test_optuna_refuses_novel_selection(tmp_path):
    proc = _train(
        [
            "-m", "experiment=tune_alpha_beta", *TINY, "data.selection=novel",
            "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path}/sweep",
            f"paths.data_dir={tmp_path}/data",
        ],
        tmp_path,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: tuning with the optuna sweeper must select on base classes, got "
        "data.selection=novel: add data.selection=base (experiment=tune_alpha_beta)"
    )
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "sweep").glob("*/checkpoints"))
