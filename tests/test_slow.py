"""Slow end-to-end runs through the command line (`make test-full`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = ["debug=tiny"]


def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ddp_two_gloo_processes_train_and_sync_metrics(tmp_path):
    data = f"paths.data_dir={tmp_path / 'data'}"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    run_dir = tmp_path / "ddp"
    _run(
        [
            "-m",
            "sdaanet.train",
            *TINY,
            *ddp,
            data,
            f"hydra.run.dir={run_dir}",
            "data.train_episodes=8",
        ],
        tmp_path,
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    import torch

    # 8 episodes, batch 2 per rank, 2 ranks -> 2 optimizer steps
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 2

    # the same checkpoint evaluated by 1 and by 2 processes gives the same (summed) metric
    results = {}
    for name, extra in [("single", []), ("ddp", ddp)]:
        out = tmp_path / f"eval_{name}"
        _run(
            [
                "-m",
                "sdaanet.eval",
                *TINY,
                *extra,
                data,
                f"ckpt_path={ckpt}",
                f"hydra.run.dir={out}",
            ],
            tmp_path,
        )
        results[name] = json.loads((out / "metrics.json").read_text())
    single, ddp_run = results["single"]["seeds"], results["ddp"]["seeds"]
    assert [r["seed"] for r in ddp_run] == [321, 322, 323, 324, 325]
    for one, two in zip(single, ddp_run, strict=True):  # every seed, every class (synced)
        assert two["class_miou"] == pytest.approx(one["class_miou"], abs=1e-6)
        assert two["fbiou"] == pytest.approx(one["fbiou"], abs=1e-6)
        assert two["per_class_iou"] == pytest.approx(one["per_class_iou"], abs=1e-6, nan_ok=True)


def test_sweep_over_two_folds_gives_each_job_its_own_dir(tmp_path):
    sweep = tmp_path / "sweep"
    _run(
        [
            "-m",
            "sdaanet.train",
            "-m",
            *TINY,
            f"paths.data_dir={tmp_path / 'data'}",
            "data.fold=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name.split("_")[0] for j in jobs] == ["0", "1"]
    for job, fold in zip(jobs, (0, 1), strict=True):
        assert f"data.fold={fold}" in job.name
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert (job / "csv" / "metrics.csv").is_file()
