"""Table III report: parameter counts equal the models', timings and memory are measured."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from tests.helpers.networks import build, node

from sdaanet import compose_config
from sdaanet.complexity import count_learnable, measure, profile, run_complexity

pytestmark = pytest.mark.filterwarnings("ignore:backbone .* RANDOM weights")

TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [1.0, 0.5, 0.25, 0.125]}


def test_complexity_report_counts_equal_the_models(tmp_path, capsys):
    cfg = compose_config(
        ["mode=complexity", "backbone=resnet18", "model.reduce_dim=16", "complexity.size=65",
         "complexity.warmup=1", "complexity.repeats=2", f"paths.output_dir={tmp_path}"],
        config_name="eval",
    )  # fmt: skip
    record = run_complexity(cfg)  # CPU: each model measured in its own child process
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for name, switch in (("baseline", False), ("sdaanet", True)):
        net = build({**model, "sdpm": switch, "saam": switch})
        r = record["results"][name]
        assert r["learnable_params"] == count_learnable(net)
        assert r["learnable_params"] == sum(p.numel() for p in net.learnable_parameters())
        assert r["ms_min"] <= r["ms_median"] <= r["ms_max"] and r["fps"] > 0
        assert r["peak_memory_mb"] > 100  # a fresh process that imported torch and ran the net
    results = record["results"]
    assert results["sdaanet"]["learnable_params"] > results["baseline"]["learnable_params"]
    assert record["device_type"] == "cpu" and record["input_size"] == 65
    assert json.loads((tmp_path / "complexity.json").read_text()) == record
    assert "Table III" in capsys.readouterr().out


def test_measure_times_repeats_after_warmup():
    net = build({**TINY, "sdpm": False, "saam": False})
    r = measure(net, 65, 2, torch.device("cpu"), warmup=0, repeats=3, batch=2)
    assert r["repeats"] == 3 and r["ms_min"] <= r["ms_median"] <= r["ms_max"]
    assert r["fps"] == pytest.approx(2 * 1000.0 / r["ms_median"]) and r["peak_memory_mb"] > 0
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure(net, 65, 1, torch.device("cpu"), warmup=0, repeats=0)


def test_profile_reports_a_failing_child_in_one_line():
    with pytest.raises(RuntimeError, match=r"process exited 1: .*must be >= 65"):
        profile(node({**TINY, "sdpm": False, "saam": False}), 33, 1, torch.device("cpu"), 0, 1)
