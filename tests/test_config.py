"""Every config composes; command-line selection works; bad overrides get Hydra's own error."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from sdaanet import compose_config
from sdaanet.config import CONF_DIR

PASCAL_DM = "sdaanet.data.modules.PascalDataModule"
GROUPS = ["data", "model", "backbone", "trainer", "logger", "callbacks", "debug", "paths", "eval"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _resolve(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


@pytest.mark.parametrize("name", _options("experiment"))
def test_every_experiment_composes(name):
    cfg = compose_config([f"experiment={name}"])
    resolved = _resolve(cfg)
    assert resolved["model"]["backbone"] == resolved["backbone"]
    assert resolved["model"]["shot"] == resolved["shot"]


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in GROUPS for o in _options(g) if not (g == "eval")],
)
def test_every_group_option_composes_for_train(group, option):
    _resolve(compose_config([f"{group}={option}"]))


@pytest.mark.parametrize("option", _options("eval"))
def test_eval_config_composes(option):
    cfg = compose_config([f"eval={option}", "ckpt_path=x.ckpt"], config_name="eval")
    assert _resolve(cfg)["ckpt_path"] == "x.ckpt"


def test_experiments_hold_only_what_differs():
    table4 = compose_config(["experiment=table4_sdpm"])
    table1 = compose_config(["experiment=table1_sdaanet"])
    assert table4.model.saam is False and table1.model.saam is True
    assert table4.model.sdpm is True and table4.data._target_ == table1.data._target_ == PASCAL_DM
    baseline = compose_config(["experiment=table1_baseline"])
    assert baseline.model.sdpm is False and baseline.model.saam is False
    coco = compose_config(["experiment=table2_sdaanet"])
    assert coco.backbone.name == "resnet101" and coco.trainer.max_epochs == 50
    assert coco.optimizer.lr == 0.05 and coco.data.batch_size == 8


def test_command_line_selection_of_shot_strategy_backbone():
    cfg = compose_config(
        [
            "data=pascal",
            "data.fold=2",
            "shot=5",
            "model.kshot_strategy=separate",
            "backbone=resnet101",
        ]
    )
    assert cfg.data.fold == 2 and cfg.model.shot == 5
    assert cfg.model.kshot_strategy == "separate" and cfg.model.backbone.name == "resnet101"
    assert list(cfg.model.ppm_scales) == [60, 30, 15, 8]


def test_paper_defaults_are_the_authors_code():
    cfg = compose_config([])
    m = cfg.model
    assert (m.alpha, m.beta, m.aux_weight) == (50.0, 0.5, 1.0)
    assert (m.teacher, m.query_reweight, m.kshot_strategy) == ("code", "code", "official")
    assert cfg.optimizer.lr == 0.025 and cfg.optimizer.momentum == 0.9
    assert cfg.optimizer.weight_decay == 1e-4 and cfg.optimizer.poly_power == 0.9


def test_unknown_group_option_and_key_raise_hydra_errors():
    with pytest.raises(MissingConfigException):
        compose_config(["model=nope"])
    with pytest.raises(ConfigCompositionException):
        compose_config(["model.no_such_key=1"])


def test_cli_unknown_key_prints_hydra_error_not_our_traceback(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "sdaanet.train", "model.no_such_key=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Could not override 'model.no_such_key'" in proc.stderr
    assert "Traceback" not in proc.stderr
