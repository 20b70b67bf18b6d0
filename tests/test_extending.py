"""Adding a method touches a network module, its config node and (outside the package) one
registry line: a toy network trains, checkpoints, and evaluates through the same path."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from tests.helpers.toy import ToyNet

from sdaanet import checkpoint, compose_config
from sdaanet.errors import ConfigError, PredictInputError
from sdaanet.eval import run as run_eval
from sdaanet.models import SDAANet
from sdaanet.predict import check_size
from sdaanet.train import run as run_train

TOY = {"_target_": "tests.helpers.toy.ToyNet", "hidden": 4, "smooth_weight": 0.25}


def test_a_toy_network_trains_checkpoints_and_evaluates(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "NETWORK_PACKAGES", [*checkpoint.NETWORK_PACKAGES, "tests"])
    cfg = compose_config(["debug=tiny", "logger=csv", f"paths.output_dir={tmp_path / 't'}"])
    cfg.model = OmegaConf.create(TOY)  # what conf/model/toy.yaml would hold
    run_train(cfg)
    rows = (tmp_path / "t" / "csv" / "metrics.csv").read_text().splitlines()
    assert {"train/loss_main", "train/loss_smooth"} <= set(rows[0].split(","))
    ckpt = tmp_path / "t" / "checkpoints" / "last.ckpt"
    net, info = checkpoint.network_from_checkpoint(ckpt)
    assert isinstance(net, ToyNet) and info["network"] == TOY
    trained = torch.load(ckpt, weights_only=True)["state_dict"]["net.head.0.weight"]
    assert torch.equal(net.head[0].weight, trained)
    argv = [f"ckpt_path={ckpt}", "eval.seeds=[1]", f"paths.output_dir={tmp_path / 'e'}"]
    run_eval(compose_config(argv, config_name="eval"), argv)
    record = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert record["protocol"]["episodes"] == 6 and 0 <= record["summary"]["class_miou"]["mean"] <= 1


def test_without_the_registry_line_the_toy_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "NETWORK_PACKAGES", [*checkpoint.NETWORK_PACKAGES, "tests"])
    cfg = compose_config(["debug=tiny", "logger=csv", f"paths.output_dir={tmp_path}"])
    cfg.model = OmegaConf.create(TOY)
    run_train(cfg)
    monkeypatch.undo()
    with pytest.raises(checkpoint.CheckpointError, match="not a network of sdaanet.models"):
        checkpoint.network_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")


def test_a_network_describes_itself_and_one_that_does_not_gets_neutral_defaults(monkeypatch):
    monkeypatch.setattr(checkpoint, "NETWORK_PACKAGES", [*checkpoint.NETWORK_PACKAGES, "tests"])
    sdaanet = {"_target_": "sdaanet.models.SDAANet", "backbone": {"name": "resnet18"},
               "reduce_dim": 64, "sdpm": True, "saam": False, "alpha": 50.0}  # fmt: skip
    assert checkpoint.summary(sdaanet) == "SDAANet(backbone=resnet18, reduce_dim=64, sdpm)"
    assert "alpha" in checkpoint.training_only(sdaanet)
    assert checkpoint.summary(TOY) == "ToyNet(hidden=4, smooth_weight=0.25)"
    assert checkpoint.training_only(TOY) == frozenset()
    toy = ToyNet(hidden=4, smooth_weight=0.25)
    assert check_size(64, toy) == 64 and check_size(100, toy) == 100  # no SD-AANet size rule
    with pytest.raises(PredictInputError, match="size 64 is not accepted: it must be >= 65"):
        check_size(64, SDAANet.__new__(SDAANet))


def test_a_network_outside_the_packages_is_refused_naming_the_config_and_the_fix():
    with pytest.raises(checkpoint.CheckpointError) as refused:
        checkpoint.build_network(TOY)
    assert str(refused.value) == (
        f"the model config names _target_ {TOY['_target_']!r}, which is not a network of "
        "sdaanet.models; refusing to build it (a network of your own: add its package to "
        "sdaanet.checkpoint.NETWORK_PACKAGES)"
    )


def test_a_setting_the_network_does_not_take_is_one_line_naming_it(monkeypatch):
    monkeypatch.setattr(checkpoint, "NETWORK_PACKAGES", [*checkpoint.NETWORK_PACKAGES, "tests"])
    with pytest.raises(ConfigError) as refused:
        checkpoint.build_network({**TOY, "reduce_dim": 16})  # as debug=tiny sets it
    assert str(refused.value) == (
        "the network node sets reduce_dim, which ToyNet.__init__ does not take: remove it "
        "('~model.reduce_dim' on the command line, or from the config)"
    )
