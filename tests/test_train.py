"""The training loop end to end on the synthetic dataset with a tiny network."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
import wandb

from sdaanet import compose_config
from sdaanet.build import build_datamodule, build_module, build_trainer
from sdaanet.checkpoint import load_compatible, load_network_weights, read_checkpoint
from sdaanet.errors import CheckpointMismatchError
from sdaanet.eval import run as run_eval
from sdaanet.train import fit, run

TINY = ["debug=tiny"]


def _cfg(tmp_path: Path, *overrides: str, name: str = "train"):
    extra = [f"paths.output_dir={tmp_path}", f"paths.data_dir={tmp_path / 'data'}"]
    if name == "train":  # the end-of-run evaluation is tested in test_records.py
        extra.append("test=false")
    return compose_config([*TINY, *extra, *overrides], config_name=name)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_one_epoch_fit_and_validate_logs_every_term(tmp_path):
    metrics = run(_cfg(tmp_path))
    assert 0.0 <= metrics["val/class_miou"] <= 1.0 and 0.0 <= metrics["val/fbiou"] <= 1.0
    rows = _csv_rows(tmp_path / "csv" / "metrics.csv")
    logged = {k for row in rows for k, v in row.items() if v}
    for key in ["loss_main", "loss_aux", "loss_kd", "loss_saam", "loss", "lr"]:
        assert f"train/{key}" in logged
    assert {"val/class_miou", "val/fbiou"} <= logged
    train_rows = [r for r in rows if r.get("train/loss")]
    r = train_rows[0]
    total = (
        float(r["train/loss_main"])
        + 1.0 * float(r["train/loss_aux"])
        + 50.0 * float(r["train/loss_kd"])
        + 0.5 * float(r["train/loss_saam"])
    )
    assert float(r["train/loss"]) == pytest.approx(total, rel=1e-5)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_optimizer_covers_only_non_backbone_parameters_with_poly_decay(tmp_path):
    # a best-checkpoint monitor that never improves after epoch 0: last.ckpt must still advance
    cfg = _cfg(
        tmp_path,
        "trainer.max_epochs=2",
        "callbacks.model_checkpoint.monitor=epoch",
        "callbacks.model_checkpoint.mode=min",
        "callbacks.model_checkpoint.filename=best",
    )
    trainer, module, _ = fit(cfg)
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert read_checkpoint(tmp_path / "checkpoints" / "best.ckpt")["global_step"] == 2
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.SGD)
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in module.net.learnable_parameters()}
    assert not ids & {id(p) for p in module.net.backbone.parameters()}
    group = opt.param_groups[0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4
    # 2 epochs x 2 steps: after step 4 of 4, lr = 0.025 * (1 - 4/4)^0.9 = 0
    lrs = [
        float(r["train/lr"])
        for r in _csv_rows(tmp_path / "csv" / "metrics.csv")
        if r.get("train/lr")
    ]
    assert lrs == pytest.approx([0.025 * (1 - i / 4) ** 0.9 for i in (1, 2, 3, 4)][: len(lrs)])
    assert len(lrs) == 4


def test_eval_reproduces_the_validation_metric_exactly(tmp_path):
    train_metrics = run(_cfg(tmp_path / "train"))
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    # one seed, the validation seed: the test episodes are the validation episodes
    cfg = _cfg(tmp_path / "eval", f"ckpt_path={ckpt}", "eval.seeds=[321]", name="eval")
    metrics = run_eval(cfg)
    assert metrics["test/class_miou"] == train_metrics["val/class_miou"]
    assert metrics["test/fbiou"] == train_metrics["val/fbiou"]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["summary"]["class_miou"]["mean"] == metrics["test/class_miou"]


class _StopAfterFirstEpoch(L.Callback):
    """Simulates an interrupted run: stops once epoch 0 is done (last.ckpt is written)."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def _lrs(path: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/lr"]) for r in _csv_rows(path) if r.get("train/lr")}


def test_resume_from_last_continues_at_saved_step_with_right_lr(tmp_path):
    full = _cfg(tmp_path / "full", "trainer.max_epochs=2")
    fit(full)
    expected = _lrs(tmp_path / "full" / "csv" / "metrics.csv")
    assert len(expected) == 4  # 2 epochs x 2 steps

    interrupted = _cfg(tmp_path / "cut", "trainer.max_epochs=2")
    L.seed_everything(interrupted.seed, workers=True)
    trainer = build_trainer(interrupted)
    trainer.callbacks.append(_StopAfterFirstEpoch())
    trainer.fit(build_module(interrupted), datamodule=build_datamodule(interrupted))
    ckpt = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(ckpt)["global_step"] == 2

    resumed = _cfg(tmp_path / "resumed", "trainer.max_epochs=2", f"ckpt_path={ckpt}")
    trainer, _, _ = fit(resumed)
    assert trainer.global_step == 4
    lrs = _lrs(tmp_path / "resumed" / "csv" / "metrics.csv")
    assert min(lrs) >= 2, "the resumed run re-trained steps before the checkpoint"
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected[step], rel=1e-12)
    assert lrs[3] == pytest.approx(0.0, abs=1e-12)  # lr_3 = 0.025 * (1 - 4/4)^0.9


def test_checkpoint_of_another_architecture_names_mismatched_keys(tmp_path):
    run(_cfg(tmp_path))
    ckpt = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    other = build_module(_cfg(tmp_path, "model=pfenet")).net
    with pytest.raises(CheckpointMismatchError) as err:
        load_compatible(other, ckpt, tmp_path / "last.ckpt", shot=1)
    message = str(err.value)
    assert "unexpected (" in message and "saam.s_cls.bias" in message
    assert "decoder.init_merge.0.0.weight (16, 34, 1, 1) vs (16, 33, 1, 1)" in message
    assert "last.ckpt: " in message
    assert "the checkpoint holds SDAANet(backbone=resnet18, reduce_dim=16, sdpm, saam)" in message
    same = build_module(_cfg(tmp_path)).net
    load_network_weights(same, ckpt)


def test_train_without_data_fails_fast_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sdaanet.train", "data=pascal", f"paths.data_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith("error: ")
    assert str(tmp_path / "pascal") in err[0] and "sdaanet-data pascal" in err[0]
    assert "Traceback" not in proc.stderr


def test_frozen_backbone_bn_keeps_its_statistics_through_fit(tmp_path):
    cfg = _cfg(tmp_path, "backbone.freeze_bn=true")
    trainer, module, _ = fit(cfg)
    fresh = build_module(cfg).net.backbone.state_dict()
    after = module.net.backbone.state_dict()
    assert all(torch.equal(fresh[k], after[k]) for k in fresh if "running" in k)
    bns = [m for m in module.net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)

    drifting = _cfg(tmp_path / "authors")  # the authors' code: BN statistics drift (D14)
    _, module, _ = fit(drifting)
    after = module.net.backbone.state_dict()
    assert any(not torch.equal(fresh[k], after[k]) for k in fresh if "running_mean" in k)


def test_default_loggers_write_an_offline_wandb_run_and_csv(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline comes from the config itself
    cfg = _cfg(tmp_path)
    cfg.logger.wandb = compose_config([]).logger.wandb  # debug=tiny drops it; the default has it
    assert cfg.logger.wandb.offline is True
    metrics = run(cfg)
    # debug=tiny: 4 episodes in batches of 2, every step logged, then one validation: train rows
    # at steps 0 and 1, the validation row at step 1 (the global step when validation ran)
    rows = _csv_rows(tmp_path / "csv" / "metrics.csv")
    terms = {f"train/{k}" for k in ("loss", "loss_main", "loss_aux", "loss_kd", "loss_saam", "lr")}
    scores = {"val/class_miou", "val/fbiou"}
    assert {"epoch", "step", *terms, *scores} <= set(rows[0])
    train = [r for r in rows if r["train/loss"]]
    val = [r for r in rows if r["val/class_miou"]]
    assert len(rows) == 3 and len(train) + len(val) == 3
    assert [(r["epoch"], r["step"]) for r in train] == [("0", "0"), ("0", "1")]
    assert [(r["epoch"], r["step"]) for r in val] == [("0", "1")]
    assert all(r[k] for r in train for k in terms) and not any(r[k] for r in train for k in scores)
    assert all(val[0][k] for k in scores) and not any(val[0][k] for k in terms)
    for k in scores:
        assert float(val[0][k]) == pytest.approx(metrics[k])
    # W&B's offline run holds the same metrics: the names and the values the CSV shows (the
    # logger finishes its run when training ends; wandb-core may write the file a moment later)
    assert wandb.run is None
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (data_file,) = run_dir.glob("run-*.wandb")
    for _ in range(60):
        if b"val/class_miou" in (data := data_file.read_bytes()):
            break
        time.sleep(0.5)
    for key in sorted({*terms, *scores, "trainer/global_step"}):
        assert key.encode() in data, key
    for r, key in ((train[0], "train/loss"), (train[1], "train/loss"), (val[0], "val/class_miou")):
        assert r[key].encode() in data, (key, r[key])
