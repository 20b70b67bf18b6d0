"""Faults: a run killed with SIGKILL resumes to the same numbers, a non-finite loss stops with
the step, the term and the files, and a demo-sized run opens no socket to the outside world."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from sdaanet import compose_config
from sdaanet.checkpoint import read_checkpoint
from sdaanet.data.episodes import EpisodeDataset
from sdaanet.errors import NonFiniteLossError
from sdaanet.train import fit, run

TINY = ["debug=tiny", "data.num_workers=0"]


def _cfg(out: Path, *overrides: str):
    extra = [f"paths.output_dir={out}", f"paths.data_dir={out.parent / 'data'}"]
    return compose_config([*TINY, *extra, *overrides])


@pytest.mark.slow  # 20-45 s on a 2-core AVX2 machine
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    long = ["data.train_episodes=24", "trainer.max_epochs=2"]  # 12 steps per epoch
    expected = run(_cfg(tmp_path / "full", *long))

    cut = tmp_path / "cut"
    args = [f"{o}" for o in [*TINY, *long, f"paths.output_dir={cut}",
                             f"paths.data_dir={tmp_path / 'data'}"]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic
    proc = subprocess.Popen([sys.executable, "-m", "sdaanet.train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    last = cut / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600  # the first epoch; minutes on a loaded machine
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.is_file(), "the run wrote no last.ckpt after its first epoch"
    time.sleep(0.5)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = read_checkpoint(last)  # never truncated: written to a temp file, then renamed
    assert saved["global_step"] == 12

    resumed = run(_cfg(tmp_path / "resumed", *long, f"ckpt_path={last}"))
    final = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    reference = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")
    assert final["global_step"] == reference["global_step"] == 24
    assert final["lr_schedulers"] == reference["lr_schedulers"]
    for key in ("val/class_miou", "val/fbiou", "train/loss"):
        assert resumed[key] == expected[key], key
    for name, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name


def poison_training_images(monkeypatch) -> None:
    """Every training episode's query image becomes NaN (the evaluation episodes stay)."""
    getitem = EpisodeDataset.__getitem__

    def poisoned(self, key):
        item = getitem(self, key)
        if self.source.split == "train":
            item["query_image"] = torch.full_like(item["query_image"], float("nan"))
        return item

    monkeypatch.setattr(EpisodeDataset, "__getitem__", poisoned)


def test_non_finite_loss_names_step_term_and_files_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    fit(_cfg(out))
    last = out / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    poison_training_images(monkeypatch)
    resume = _cfg(out, "trainer.max_epochs=2", f"ckpt_path={last}")
    with pytest.raises(NonFiniteLossError) as err:
        fit(resume)
    message = str(err.value)
    assert "training step 2: non-finite loss term main=nan" in message
    assert "query synthetic" in message and "supports synthetic" in message
    assert "ckpt_path=<run>/checkpoints/last.ckpt" in message
    assert last.read_bytes() == before, "a checkpoint was written over the last good one"


GUARD = """
import ipaddress, json, socket, sys
attempts = []
connect = socket.socket.connect

def local(address):
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    try:
        return address[0] in ("localhost", "") or ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False

def guarded(self, address):
    if not local(address):
        attempts.append(str(address))
        raise OSError(f"test: network access to {address} refused")
    return connect(self, address)

socket.socket.connect = guarded
socket.socket.connect_ex = guarded
from sdaanet import compose_config
from sdaanet.train import run
cfg = compose_config(sys.argv[1:])
cfg.logger.wandb = compose_config([]).logger.wandb  # the default loggers: W&B offline + CSV
metrics = run(cfg)
print(json.dumps({"attempts": attempts, "tested": "test/class_miou" in metrics}))
"""


def test_a_demo_sized_run_opens_no_socket_to_a_non_local_address(tmp_path):
    """In a fresh process (W&B's service state stays there), with connect() guarded."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}  # offline from the config
    args = [*TINY, f"paths.output_dir={tmp_path}", f"paths.data_dir={tmp_path}", "test=true"]
    proc = subprocess.run([sys.executable, "-c", GUARD, *args], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"attempts": [], "tested": True}
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_checkpoint_of_another_shot_or_architecture_or_truncated_names_the_file(tmp_path):
    from sdaanet.errors import CheckpointError, CheckpointMismatchError

    out = tmp_path / "run"
    fit(_cfg(out))
    last = out / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointMismatchError, match=r"last.ckpt was trained 1-shot but shot=5"):
        fit(_cfg(tmp_path / "five", "shot=5", f"ckpt_path={last}"))
    with pytest.raises(CheckpointMismatchError, match=r"last.ckpt: checkpoint does not match"):
        fit(_cfg(tmp_path / "pfenet", "model=pfenet", f"ckpt_path={last}"))
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*cut.ckpt"):
        fit(_cfg(tmp_path / "cut", f"ckpt_path={cut}"))


def test_batched_finiteness_checks_still_keep_the_last_checkpoint(tmp_path, monkeypatch):
    """On CUDA the loss terms are checked every FINITE_CHECK_EVERY steps (each check waits for
    the GPU); the same path on the CPU, every 3 steps: still caught before any checkpoint."""
    from sdaanet.lit import FewShotSegmentationModule

    out = tmp_path / "run"
    fit(_cfg(out))
    last = out / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    start = FewShotSegmentationModule.on_train_start

    def every_3(self):
        start(self)
        self.finite_check_every = 3

    monkeypatch.setattr(FewShotSegmentationModule, "on_train_start", every_3)
    poison_training_images(monkeypatch)
    with pytest.raises(
        NonFiniteLossError,
        match=r"a training step in 2-3 \(the loss terms are "
        r"checked every 3 steps on this device\)",
    ):
        fit(_cfg(out, "trainer.max_epochs=2", f"ckpt_path={last}"))
    assert last.read_bytes() == before, "a checkpoint was written over the last good one"


def _csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


class CutAtSecondEpoch(L.Callback):
    """Ends a run as a kill would, once its first epoch's last.ckpt is written."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("cut")


def test_a_resumed_run_keeps_its_csv_log_of_the_steps_before_the_cut(tmp_path):
    """Resumed after epoch 1, the run's metrics.csv holds both epochs' rows, as an uncut run's;
    resumed again from epoch 1 (the rows of epoch 2 already on disk), no row twice."""
    two = ["trainer.max_epochs=2", "test=false"]
    run(_cfg(tmp_path / "full", *two))
    expected = _csv_rows(tmp_path / "full")
    assert [(r["epoch"], r["step"]) for r in expected] == [
        ("0", "0"), ("0", "1"), ("0", "1"), ("1", "2"), ("1", "3"), ("1", "3"),
    ]  # fmt: skip

    cut = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="cut"):
        run(_cfg(cut, *two, f"+callbacks.cut._target_={__name__}.CutAtSecondEpoch"))
    epoch1 = tmp_path / "epoch1.ckpt"
    shutil.copy(cut / "checkpoints" / "last.ckpt", epoch1)
    run(_cfg(cut, *two))  # resume=true: continues from the directory's last.ckpt
    assert _csv_rows(cut) == expected
    run(_cfg(cut, *two, f"ckpt_path={epoch1}"))  # epoch 2 again, its rows already logged
    assert _csv_rows(cut) == expected


@pytest.mark.slow  # three 24-step runs: about a minute on two idle cores
def test_sigterm_mid_epoch_saves_that_step_and_resumes_to_the_uninterrupted_numbers(tmp_path):
    """SIGTERM (a scheduler's first word) mid-epoch: the run stops after the current batch with
    `last.ckpt` of that step, one line and status 143; resumed in its directory it ends with
    the numbers, weights and CSV log of a run never stopped."""
    long = ["data.train_episodes=24", "trainer.max_epochs=2", "test=false"]  # 12 steps/epoch
    expected = run(_cfg(tmp_path / "full", *long))

    cut = tmp_path / "cut"
    args = [*TINY, *long, f"paths.output_dir={cut}", f"paths.data_dir={tmp_path / 'data'}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic
    proc = subprocess.Popen([sys.executable, "-m", "sdaanet.train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    last = cut / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600  # the first epoch; minutes on a loaded machine
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.is_file(), "the run wrote no last.ckpt after its first epoch"
    time.sleep(0.5)  # into the second epoch
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    step = read_checkpoint(last)["global_step"]
    assert 12 < step < 24, "not stopped mid-epoch: the timing of this test is off"
    assert f"stopped by SIGTERM at step {step}; saved {last}; resume with" in out
    assert f"ckpt_path={last}" in out

    resumed = run(_cfg(cut, *long))  # resume=true: continues from the directory's last.ckpt
    final = read_checkpoint(last)
    reference = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")
    assert final["global_step"] == reference["global_step"] == 24
    assert final["lr_schedulers"] == reference["lr_schedulers"]
    for key in ("val/class_miou", "val/fbiou", "train/loss"):
        assert resumed[key] == expected[key], key
    for name, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name
    assert _csv_rows(cut) == _csv_rows(tmp_path / "full")
