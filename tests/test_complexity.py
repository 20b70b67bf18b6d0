"""Table III report: parameter counts equal the models', timings and memory are measured."""

import json
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf
from tests.helpers.networks import build, node
from torch import nn

from sdaanet import complexity, compose_config
from sdaanet.complexity import count_learnable, main, measure, profile, run_complexity
from sdaanet.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:backbone .* RANDOM weights")

TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [1.0, 0.5, 0.25, 0.125]}

# Learnable parameters of the report's networks by hand: C = reduce_dim 16, 4 decoder bins, the
# ResNet-18's cat[layer3, layer2] = 256 + 128 = 384 channels (1x1 convs without bias unless said).
# Baseline: down_query + down_supp 2*384*16 = 12288; init_merge 4*(2C+1)*C = 2112 (query,
# prototype, prior); alpha_conv 3*2C*C = 1536; beta_conv 4*2*9C^2 = 18432; inner_cls 4*(9C^2 +
# 2C + 2) = 9352; res1 4C*C = 1024; res2 2*9C^2 = 4608; cls 9C^2 + 2C + 2 = 2338 -> 51690.
# SD-AANet adds SDPM's SE (C*C/4 + C/4) + (C/4*C + C) = 148; SAAM's 3x3 2C->4C conv with bias
# 18496, PSP(4C->C) stages 4*(4C*C + BN 2C) = 4224 and bottleneck 9*8C*C + BN 2C = 18464,
# s_cls 2C + 2 = 34, q_maskgeneration C + 1 = 17; and the attention channel of init_merge 4C = 64.
LEARNABLE = {"baseline": 51690, "sdaanet": 51690 + 148 + 18496 + 4224 + 18464 + 34 + 17 + 64}


def test_complexity_report_counts_equal_the_models(tmp_path, capsys):
    cfg = compose_config(
        ["backbone=resnet18", "model.reduce_dim=16", "complexity.size=65",
         "complexity.warmup=1", "complexity.repeats=2", f"paths.output_dir={tmp_path}"],
        config_name="complexity",
    )  # fmt: skip
    record = run_complexity(cfg)  # CPU: each model measured in its own child process
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for name, switch in (("baseline", False), ("sdaanet", True)):
        net = build({**model, "sdpm": switch, "saam": switch})
        r = record["results"][name]
        assert r["learnable_params"] == count_learnable(net) == LEARNABLE[name]
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


class Known(nn.Module):
    """A network of known size and speed: a frozen backbone conv 3->4 3x3 (112 parameters), a
    head conv 4->2 1x1 (10) and a frozen scale (5); forwards sleep 0.2 s, then `fast` s."""

    def __init__(self, warmup: int, fast: float) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(4, 2, 1)
        self.scale = nn.Parameter(torch.ones(5), requires_grad=False)
        self.warmup, self.fast, self.calls = warmup, fast, 0

    def learnable_parameters(self):
        return [self.head.weight, self.head.bias, self.scale]

    def forward(self, query, images, masks):
        self.calls += 1
        time.sleep(0.2 if self.calls <= self.warmup else self.fast)
        return query


def test_count_learnable_and_measure_on_a_known_module():
    net = Known(warmup=2, fast=0.01)
    assert count_learnable(net) == 4 * 2 + 2  # the head; the backbone and frozen scale not
    r = measure(net, 65, 1, torch.device("cpu"), warmup=2, repeats=3, batch=4)
    assert net.calls == 2 + 3 and r["repeats"] == 3 and r["warmup"] == 2
    # only the 10 ms forwards are timed: none of the 200 ms warmup ones
    assert 10 <= r["ms_min"] <= r["ms_median"] <= r["ms_max"] < 200
    assert r["fps"] <= 4 * 1000 / 10 and r["fps"] == pytest.approx(4000 / r["ms_median"])


def test_profile_reports_a_failing_child_in_one_line():
    with pytest.raises(RuntimeError, match=r"process exited 1: .*must be >= 65"):
        profile(node({**TINY, "sdpm": False, "saam": False}), 33, 1, torch.device("cpu"), 0, 1)


def test_the_command_composes_only_what_it_measures(tmp_path, monkeypatch, capsys):
    cfg = compose_config([], config_name="complexity")
    assert sorted(cfg) == [
        "backbone", "complexity", "data", "model", "paths", "run_group", "shot", "task_name",
    ]  # fmt: skip
    run_dir = tmp_path / "run"
    argv = ["backbone=resnet18", "model.reduce_dim=16", "complexity.size=65",
            "complexity.device=cpu", "complexity.warmup=0", "complexity.repeats=1",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["sdaanet-complexity", *argv])
    timing = {"ms_median": 2.0, "ms_min": 1.0, "ms_max": 3.0, "fps": 500.0, "peak_memory_mb": 1.0}
    monkeypatch.setattr(complexity, "profile", lambda *args: timing)  # measured above: speed
    main()
    record = json.loads((run_dir / "complexity.json").read_text())
    assert record["results"] == {k: {"learnable_params": n, **timing} for k, n in LEARNABLE.items()}
    assert f"wrote {run_dir / 'complexity.json'}" in capsys.readouterr().out
    cfg.complexity.device = "tpu"
    with pytest.raises(ConfigError, match=r"^device 'tpu' is not a device \(use cpu or cuda\)$"):
        run_complexity(cfg)
