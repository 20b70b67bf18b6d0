"""Every bad setting is one line, before anything is written: `check_config` on a composed
config, and `precheck` on a command line before Hydra creates a run folder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sdaanet.errors import ConfigError
from sdaanet.models.sdpm import KSHOT_STRATEGIES, QUERY_REWEIGHTS, TEACHERS
from sdaanet.runtime import PRECISIONS

POSITIVE = ("shot", "data.ways", "data.batch_size", "data.val_batch_size", "data.val_episodes")
CHOICES = {
    "model.kshot_strategy": KSHOT_STRATEGIES,
    "model.teacher": TEACHERS,
    "model.query_reweight": QUERY_REWEIGHTS,
    "runtime.precision": PRECISIONS,
    "test_ckpt": ("best", "last"),
    "eval.kshot": ("fusion", "voting"),
}


def _positive(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value} must be a positive integer, e.g. {key}=1")


def check_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` naming the first bad setting of a composed train or eval config."""
    for key in POSITIVE:
        _positive(cfg, key)
    _positive(cfg, "data.train_episodes", allow_none=True)
    for key, choices in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    ways, multiclass = int(cfg.data.ways), "ways" in cfg.model
    if ways > 1 and not multiclass:
        raise ConfigError(
            f"data.ways={ways} needs the multi-class network: add model=multiclass "
            "(experiment=table7_sdaanet sets both)"
        )
    if multiclass and ways < 2:
        raise ConfigError(f"model=multiclass needs data.ways >= 2, got data.ways={ways}")
    if "eval" in cfg and not list(cfg.eval.seeds or []):
        raise ConfigError("eval.seeds is empty; give at least one, e.g. eval.seeds=[321]")
    selection = OmegaConf.select(cfg, "data.selection", default="novel")
    if sweeper_target().endswith(".OptunaSweeper") and selection != "base":
        raise ConfigError(
            f"tuning with the optuna sweeper must select on base classes, got "
            f"data.selection={selection}: add data.selection=base (experiment=tune_alpha_beta)"
        )


def sweeper_target() -> str:
    """The `_target_` of the running Hydra app's sweeper ("" outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return str(OmegaConf.select(HydraConfig.get(), "sweeper._target_", default="") or "")


def _hydra_message(exc: BaseException) -> str:
    """Hydra's multi-line composition errors as one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if any(line.startswith("Available options") for line in lines):
        start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
        options = [line for line in lines[start + 1 :] if " " not in line]
        return f"{lines[0]}; {lines[start].rstrip(':').lower()}: {', '.join(options)}"
    text = lines[0].rstrip(".") if lines else type(exc).__name__
    cause = str(exc.__cause__ or "").splitlines()
    if cause and "not in struct" in cause[0]:
        key = cause[0].split("'")[1]
        add = next((line for line in lines[1:] if line.startswith("To append")), None)
        text += f": the config has no key {key!r}" + (
            f" ({add[0].lower()}{add[1:]})" if add else ""
        )
    elif cause:
        text += f": {cause[0].strip()}"
    return text


def precheck(config_name: str, argv: Sequence[str]) -> Any:
    """Compose the command line's config, `check_config` it, and check the training data's files
    (train) or the checkpoint (eval); a flag such as `--multirun` or `--cfg` leaves the command
    line to Hydra (each job is checked when it starts)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sdaanet.config import compose_config

    if any(arg.startswith("-") for arg in argv):
        return None
    try:
        cfg = compose_config(list(argv), config_name=config_name)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_hydra_message(exc)) from None
    check_config(cfg)
    if config_name == "train":  # the dataset's files, before Hydra makes a run folder
        from sdaanet.train import build_datamodule

        build_datamodule(cfg)
    elif cfg.get("mode") == "test":  # the checkpoint: missing, unreadable or unsafe
        from sdaanet.checkpoint import read_checkpoint, resolve_checkpoint

        if not cfg.get("ckpt_path"):
            raise ConfigError("ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt")
        read_checkpoint(resolve_checkpoint(cfg.ckpt_path))
    return cfg
