"""Every config composes; command-line selection works; bad overrides get Hydra's own error."""

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from sdaanet import compose_config
from sdaanet.config import CONF_DIR

PASCAL_DM = "sdaanet.data.modules.PascalDataModule"
GROUPS = [
    "data", "model", "backbone", "optimizer", "scheduler", "trainer", "runtime", "label_mode",
    "logger", "callbacks", "debug", "paths", "eval",
]  # fmt: skip
MISSING = object()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _resolve(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def _leaves(node, prefix: str):
    """(dotted key, value) of every setting under `node`."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _put(settings: dict, key: str, value) -> None:
    """A later setting replaces `key`, the settings below it and a leaf above it (an empty
    mapping merges into an existing one, changing nothing)."""
    if value == {} and any(k.startswith(key + ".") for k in settings):
        return
    for k in [k for k in settings if k.startswith(key + ".") or key.startswith(k + ".")]:
        del settings[k]
    settings[key] = value


def _parts(group: str, option: str) -> tuple[dict, list]:
    """`group/option.yaml`'s group selections (`override /group: option`, later wins) and its own
    settings, after those of the configs of the same group its defaults list includes (an
    option, or a shared file below the group merged `@_here_`)."""
    path = CONF_DIR / group / f"{option}.yaml"
    header = re.match(r"# @package (\S+)", path.read_text())
    package = header.group(1) if header else group
    content = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    selections: dict = {}
    own: list = []
    varying: set = set()
    for entry in content.pop("defaults", []):
        if entry == "_self_":
            continue
        if isinstance(entry, str):
            included = PurePosixPath(option).parent / entry.removesuffix("@_here_")
            sub_selections, sub_own = _parts(group, str(included))  # relative to this file
            selections.update(sub_selections)
            own.extend(sub_own)
        else:
            ((key, sub_option),) = entry.items()
            if key.split()[-1].lstrip("/").startswith("hydra/"):
                continue  # Hydra's own groups (hydra/sweeper): not in the job's config
            if "${" in str(sub_option):  # chosen by another group (model/ppm_scales by data):
                # what its keys resolve to is checked by tests/test_models_nodes.py
                varying |= _keys_of(group, key.split()[-1], package)
                continue
            selections[key.split("/")[-1]] = sub_option
    content.pop("hydra", None)  # hydra.* settings: not in the job's config either
    own.extend(
        kv
        for kv in _leaves(content, "" if package == "_global_" else package)
        if kv[0] not in varying
    )
    return selections, own


def _keys_of(group: str, entry: str, package: str) -> set:
    """The keys any option of subgroup `entry` (`name@_here_`, below `group`) sets."""
    sub = CONF_DIR / group / entry.removesuffix("@_here_")
    options = [OmegaConf.to_container(OmegaConf.load(p)) for p in sub.glob("*.yaml")]
    return {k for option in options for k, _ in _leaves(option, package)}


def _settings(group: str, option: str) -> dict:
    """What selecting `group=option` must put in the composed config, read from the YAML files
    themselves: the group options it selects, then its own settings on top (Hydra merges the
    selected options where their group stands in the defaults list, before this file)."""
    selections, own = _parts(group, option)
    settings: dict = {}
    for sub_group, sub_option in selections.items():
        for k, v in ({} if sub_option is None else _settings(sub_group, sub_option)).items():
            _put(settings, k, v)
    for k, v in own:
        _put(settings, k, v)
    return settings


def _lookup(tree, key: str):
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return MISSING
        tree = tree[part]
    return tree


def assert_settings_landed(cfg, group: str, option: str) -> None:
    # interpolations compare unresolved, except the one compose_config resolves on purpose
    settings = {k: v for k, v in _settings(group, option).items() if k != "paths.output_dir"}
    assert settings, f"{group}/{option}.yaml sets nothing this test can check"
    raw = OmegaConf.to_container(cfg, resolve=False)
    wrong = {k: (v, _lookup(raw, k)) for k, v in settings.items() if _lookup(raw, k) != v}
    assert not wrong, f"{group}={option}: key -> (file, composed): {wrong}"


@pytest.mark.parametrize("name", _options("experiment"))
def test_every_experiment_composes(name):
    cfg = compose_config([f"experiment={name}"])
    resolved = _resolve(cfg)
    assert resolved["model"]["backbone"] == resolved["backbone"]
    assert resolved["model"]["shot"] == resolved["shot"]
    assert_settings_landed(cfg, "experiment", name)
    evaluation = compose_config([f"experiment={name}"], config_name="eval")  # sdaanet-eval too
    assert _resolve(evaluation)["model"] == resolved["model"]
    assert evaluation.label_mode == cfg.label_mode


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in GROUPS for o in _options(g) if not (g == "eval")],
)
def test_every_group_option_composes_for_train(group, option):
    cfg = compose_config([f"{group}={option}"])
    _resolve(cfg)
    assert_settings_landed(cfg, group, option)


@pytest.mark.parametrize("option", _options("eval"))
def test_eval_config_composes(option):
    cfg = compose_config([f"eval={option}", "ckpt_path=x.ckpt"], config_name="eval")
    assert _resolve(cfg)["ckpt_path"] == "x.ckpt"
    assert_settings_landed(cfg, "eval", option)


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
    assert cfg.optimizer.weight_decay == 1e-4 and cfg.scheduler.power == 0.9
    assert (
        cfg.optimizer._target_ == "torch.optim.SGD"
        and cfg.scheduler._target_ == "sdaanet.lit.PolyLR"
    )


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


def test_the_top_level_conf_is_the_package_config_directory():
    root = Path(__file__).resolve().parents[1]
    top = root / "conf"
    assert top.is_symlink() and top.resolve() == (root / "src" / "sdaanet" / "conf").resolve()
    assert (top / "train.yaml").read_text() == (CONF_DIR / "train.yaml").read_text()
