"""Table III report: parameter counts equal the models', timings and memory are measured."""

import json

import torch
from omegaconf import OmegaConf

from sdaanet import compose_config
from sdaanet.complexity import count_learnable, measure, run_complexity
from sdaanet.models import build_model


def test_complexity_report_counts_equal_the_models(tmp_path, capsys):
    cfg = compose_config(
        ["mode=complexity", "backbone=resnet18", "model.reduce_dim=16", "complexity.size=65",
         "complexity.warmup=1", "complexity.repeats=3", f"paths.output_dir={tmp_path}"],
        config_name="eval",
    )  # fmt: skip
    record = run_complexity(cfg)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for name, switches in (("baseline", False), ("sdaanet", True)):
        net = build_model({**model, "sdpm": switches, "saam": switches})
        expected = sum(p.numel() for p in net.learnable_parameters())
        r = record["results"][name]
        assert r["learnable_params"] == expected == count_learnable(net)
        assert r["ms_min"] <= r["ms_median"] <= r["ms_max"] and r["fps"] > 0
        assert r["peak_memory_mb"] > 100  # a child process that imported torch and ran the net
    results = record["results"]
    assert results["sdaanet"]["learnable_params"] > results["baseline"]["learnable_params"]
    assert json.loads((tmp_path / "complexity.json").read_text()) == record
    assert "Table III" in capsys.readouterr().out


def test_measure_times_repeats_after_warmup():
    net = build_model({"backbone": "resnet18", "reduce_dim": 16, "sdpm": False, "saam": False})
    r = measure(net, 65, 1, torch.device("cpu"), warmup=0, repeats=2)
    assert r["repeats"] == 2 and r["fps"] == 1000.0 / r["ms_median"]
