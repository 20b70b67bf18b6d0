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
    assert [j.name for j in jobs] == ["0_data.fold-0", "1_data.fold-1"]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert (job / "csv" / "metrics.csv").is_file()
    # a job's checkpoint, by its path as the sweep wrote it (no quoting), evaluates
    out = tmp_path / "eval"
    ckpt = jobs[1] / "checkpoints" / "last.ckpt"
    _run(["-m", "sdaanet.eval", *TINY, f"paths.data_dir={tmp_path / 'data'}",
          f"ckpt_path={ckpt}", f"hydra.run.dir={out}", "eval.seeds=[321]"], tmp_path)  # fmt: skip
    record = json.loads((out / "metrics.json").read_text())
    assert record["checkpoint"] == str(ckpt) and record["protocol"]["fold"] == 1


def test_sweep_with_a_failing_job_goes_on_and_reports_it(tmp_path):
    """model.alpha=1e39 (a valid number, beyond float32) makes the loss non-finite at the first
    step (model.alpha=nan is refused up front): that job fails, the other runs,
    the command ends with the summary line and exit status 1 (one failed job)."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "sdaanet.train", "-m", *TINY, "model.alpha=1e39,5",
         f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}", "eval.seeds=[321]"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    failed, done = (
        sweep / "0_eval.seeds-_321_+model.alpha-1e+39",
        sweep / "1_eval.seeds-_321_+model.alpha-5",
    )
    assert proc.stderr.strip().splitlines()[-1] == (
        f"sweep: 1 of 2 jobs failed: {failed} (each holds failed.json)"
    )
    assert "Traceback" not in proc.stderr
    record = json.loads((failed / "failed.json").read_text())
    assert record["error"] == "NonFiniteLossError"
    assert f"error: {record['reason']}" in proc.stderr.splitlines()
    assert (done / "metrics.json").is_file()  # the sweep went on after the failed job
    report = _run(["-m", "sdaanet.report", str(sweep)], tmp_path).stdout
    row = "| model.alpha=1e+39 | failed | — | — | — | failed fold 0; missing folds 1, 2, 3 |"
    assert row in report
    assert f"- model.alpha=1e+39, fold 0: NonFiniteLossError: {record['reason']}" in report
