"""The real-photo recipe (`recipe=msrc_lite0`) for a few steps on a handful of photos, and its
EfficientNet-Lite checkpoint through evaluation, predict and complexity like a ResNet one."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tests.helpers.msrc import tiny_msrc

from sdaanet import compose_config
from sdaanet.checkpoint import network_from_checkpoint
from sdaanet.complexity import run_complexity
from sdaanet.predict import predict
from sdaanet.references import score_references
from sdaanet.train import run

FEW = ["data.train_size=97", "data.val_size=97", "data.train_episodes=4", "trainer.max_epochs=1",
       "data.val_episodes=4", "data.val_batch_size=4", "eval.seeds=[321,322]", "data.min_area=1",
       "logger.wandb=null", "data.source.cache=false", "data.num_workers=0",
       "trainer.log_every_n_steps=1"]  # fmt: skip


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe")
    overrides = ["recipe=msrc_lite0", f"data.root={tiny_msrc(out / 'msrc')}", *FEW]
    cfg = compose_config([*overrides, f"paths.output_dir={out / 'run'}"])
    metrics = run(cfg)
    return out / "run", metrics, overrides


def test_the_recipe_is_lite0_on_msrc_at_its_budget():
    cfg = compose_config(["recipe=msrc_lite0"])
    assert cfg.backbone.name == "efficientnet_lite0" and cfg.backbone.weights == "imagenet"
    assert cfg.data._target_.endswith("MSRCDataModule") and cfg.data.train_size == 225
    steps = cfg.data.train_episodes // cfg.data.batch_size * cfg.trainer.max_epochs
    assert steps == 300 and cfg.optimizer.lr == 0.025 and cfg.model.alpha == 50.0
    assert cfg.test_ckpt == "last" and cfg.trainer.limit_val_batches == 0
    row = compose_config(["experiment=table4_baseline", "recipe=msrc_lite0"])
    assert (row.model.sdpm, row.model.saam, row.backbone.name) == (False, False, cfg.backbone.name)


def test_a_few_recipe_steps_train_and_evaluate_over_the_seeds(lite_run):
    out, metrics, _ = lite_run
    lines = (out / "csv" / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step,train/loss") and len(lines) >= 2
    record = json.loads(next((out / "eval").glob("last-msrc-fold0-1shot-*.json")).read_text())
    assert [r["seed"] for r in record["seeds"]] == [321, 322]
    assert 0.0 <= metrics["test/class_miou"] <= 1.0
    net, _ = network_from_checkpoint(out / "checkpoints" / "last.ckpt")
    assert net.backbone.name == "efficientnet_lite0" and net.backbone.renormalise
    stored = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(  # the ImageNet weights travel in the checkpoint
        stored["net.backbone.layer0.0.weight"], net.backbone.layer0[0].weight.cpu()
    )


def test_predict_runs_the_lite_checkpoint_on_a_photo(lite_run):
    out, _, _ = lite_run
    rng = np.random.default_rng(0)
    support = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[10:40, 20:50] = 1
    query = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    pred = predict(out / "checkpoints" / "last.ckpt", [(support, mask)], query)
    assert pred.shape == (50, 70) and set(np.unique(pred)) <= {0, 1}


def test_complexity_measures_the_lite_networks(tmp_path):
    cfg = compose_config(
        ["backbone=efficientnet_lite0", "complexity.size=65",
         "complexity.warmup=1", "complexity.repeats=1", f"paths.output_dir={tmp_path}"],
        config_name="complexity",
    )  # fmt: skip
    record = run_complexity(cfg)
    lite = record["results"]
    assert lite["sdaanet"]["learnable_params"] > lite["baseline"]["learnable_params"] > 0
    assert record["backbone"] == "efficientnet_lite0"


def test_references_score_the_untrained_network_and_the_prototype_baseline(lite_run):
    _, _, overrides = lite_run
    result = score_references([*overrides, "data.holdout_fraction=0.6"])  # a tiny tree
    assert result["prototype_threshold"] in [round(0.05 * i, 2) for i in range(20)]
    for name in ("untrained", "prototype"):
        assert [r["seed"] for r in result[name]["seeds"]] == [321, 322]
        values = [r["fbiou"] for r in result[name]["seeds"]]
        assert result[name]["summary"]["fbiou"]["mean"] == pytest.approx(sum(values) / 2)
    assert OmegaConf.to_container(compose_config(overrides).eval.seeds) == [321, 322]
