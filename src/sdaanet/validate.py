"""Every bad setting is one line, before anything is written: `check_config` on a composed
config (every key of `sdaanet.rules` typed and range-checked, the choices, the combinations), and
`precheck` on a command line (each job of a multirun) before Hydra creates a run folder."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sdaanet.data.datamodule import MOVED_SETTINGS
from sdaanet.errors import ConfigError, SdaanetError, one_line
from sdaanet.records import parse_override
from sdaanet.rules import check_values
from sdaanet.sweep import MULTIRUN_FLAGS, sweeper_target

# what Hydra's override grammar refuses in an unquoted value (a path), or reads as a sweep
GRAMMAR_CHARS = ("=", ",", "[", "]", "{", "}", "(", ")", "'", '"', "~", "#", "!", "&", ";", "^")


def check_config(cfg: DictConfig, sweeper: str | None = None) -> None:
    """Raise `ConfigError` naming the first bad setting of a composed train or eval config;
    `sweeper`: the `_target_` of the sweeper that runs it (default: the running app's)."""
    check_values(cfg)
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
    check_selection(cfg, sweeper_target() if sweeper is None else sweeper)


def check_selection(cfg: DictConfig, sweeper: str) -> None:
    """Tuning (the optuna sweeper) must select checkpoints on base classes."""
    selection = OmegaConf.select(cfg, "data.selection", default="novel")
    if sweeper.endswith(".OptunaSweeper") and selection != "base":
        raise ConfigError(
            f"tuning with the optuna sweeper must select on base classes, got "
            f"data.selection={selection}: add data.selection=base (experiment=tune_alpha_beta)"
        )


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


def _unquoted(argv: Sequence[str], multirun: bool) -> None:
    """Refuse a value that Hydra's override grammar cannot take unquoted (a path holding `=` or
    `,`, as the job folders of old sweeps did), saying how to quote it. A comma-separated path
    in a single run is refused too: Hydra would read it as a sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from sdaanet.config import hydra_quoted

    parser = OverridesParser.create()
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or value[:1] in ("'", '"'):
            continue
        try:
            swept = parser.parse_override(arg).is_sweep_override()
        except HydraException:
            swept = None
        if swept is None or (swept and not multirun and "/" in value):
            bad = [c for c in GRAMMAR_CHARS if c in value]
            if bad:
                raise ConfigError(
                    f"{arg} contains {' or '.join(map(repr, bad))}, which Hydra's override "
                    f'grammar cannot take unquoted; quote it: {key}="{hydra_quoted(value)}"'
                )


def precheck(config_name: str, argv: Sequence[str], checkpoint: bool = True) -> Any:
    """Compose the command line's config, `check_config` it, and check the training data's files
    (train) or the checkpoint and what the evaluation takes from it (eval; not without
    `checkpoint`, for one that does not exist yet). With `-m`/`--multirun`, every job of the
    sweep is checked (`_precheck_sweep`); another flag such as `--cfg` leaves the command line
    to Hydra."""
    flags = [arg for arg in argv if arg.startswith("-")]
    overrides = [arg for arg in argv if not arg.startswith("-")]
    if any(flag not in MULTIRUN_FLAGS for flag in flags):
        return None
    _unquoted(overrides, multirun=bool(flags))
    if flags:
        _precheck_sweep(config_name, overrides, checkpoint)
        return None
    cfg = _compose(overrides, config_name)
    _check_job(cfg, config_name, overrides, {}, checkpoint=checkpoint)
    return cfg


def _compose(overrides: Sequence[str], config_name: str, with_hydra: bool = False) -> DictConfig:
    """`compose_config`, Hydra's errors as one line (`with_hydra`: keep the `hydra` node)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sdaanet.config import compose_config

    for arg in overrides:  # a data key that has moved to another node: say where it is now
        key, value = parse_override(arg)
        now = MOVED_SETTINGS.get(key.removeprefix("data.")) if key.startswith("data.") else None
        if now:
            raise ConfigError(f"{key} is now {now}: pass {now}={value or '<value>'} instead")
    try:
        return compose_config(list(overrides), config_name=config_name, with_hydra=with_hydra)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_hydra_message(exc)) from None


def _check_job(
    cfg: DictConfig,
    config_name: str,
    overrides: Sequence[str],
    seen: dict[str, Any],
    sweeper: str | None = None,
    checkpoint: bool = True,
) -> None:
    """`check_config`, then the training data's files (train), or the checkpoint and the test
    data it leads to (eval: `_check_evaluation`); `seen` holds what was checked already (one
    sweep reads each checkpoint and checks each dataset once)."""
    from sdaanet.build import build_datamodule

    check_config(cfg, sweeper)
    if config_name == "complexity":  # Table III: no data files, no checkpoint
        return
    if config_name == "eval":
        if not checkpoint:
            return
        cfg = _check_evaluation(cfg, overrides, seen)
    key = OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, ["data", "shot", "seed"]))
    if key not in seen:  # the dataset's files, before Hydra makes a run folder
        build_datamodule(cfg, stage="test" if config_name == "eval" else None)
        seen[key] = True


def _check_evaluation(cfg: DictConfig, overrides: Sequence[str], seen: dict[str, Any]) -> Any:
    """The checkpoint (missing, unreadable, unsafe, not an sdaanet one) and what the evaluation
    takes from it (`sdaanet.plan.settle`: the shot, the network, the data, the protocol),
    silently; returns the settled config. A sweep reads each checkpoint once; the reading is
    kept for the evaluation that follows (`keep_checkpoint`), which then does not read it."""
    from sdaanet.checkpoint import keep_checkpoint, read_checkpoint, resolve_checkpoint, unweighted
    from sdaanet.plan import settle

    path = resolve_checkpoint(cfg.get("ckpt_path"))
    if (given := str(cfg.ckpt_path)) not in seen:
        checkpoint = read_checkpoint(path)
        keep_checkpoint(path, checkpoint)
        seen[given] = unweighted(checkpoint)  # what the sweep's other jobs need of it
    return settle(cfg, path, overrides, seen[given]).cfg  # its line is the run's to print


def _sweep_values(override: Any, basic: bool) -> list[str] | None:
    """The values of one override to check: every value of a list or choice sweep (for a
    search space of a sweeper other than Hydra's basic one, a range's ends), an interval's
    bounds; None for what cannot be expanded here (a glob)."""
    from hydra.core.override_parser.types import ValueType

    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
        return None
    if override.is_interval_sweep():
        sweep = override.value()
        return [str(sweep.start), str(sweep.end)]
    values = list(override.sweep_string_iterator())
    if override.value_type == ValueType.RANGE_SWEEP and not basic:
        return [values[0], values[-1]]
    return values


def _precheck_sweep(config_name: str, overrides: Sequence[str], checkpoint: bool = True) -> None:
    """Check every job of a multirun before Hydra makes its folder: the sweeper's own search
    space (`hydra.sweeper.params`) and the command line's sweeps, expanded into their cartesian
    product; the first bad job is refused, naming its swept values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        given = parser.parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(_hydra_message(exc)) from None
    values = [_sweep_values(o, True) for o in given]
    if None in values:
        return  # a glob sweep: each job is checked when it starts
    first = [f"{o.get_key_element()}={v[0]}" for o, v in zip(given, values, strict=True)]
    base = _compose(first, config_name, with_hydra=True)
    sweeper = str(OmegaConf.select(base, "hydra.sweeper._target_", default="") or "")
    check_selection(base, sweeper)
    params = OmegaConf.select(base, "hydra.sweeper.params", default=None) or {}
    params_overrides = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    merged = {o.get_key_element(): o for o in params_overrides}
    merged.update({o.get_key_element(): o for o in given})  # the command line wins
    basic = sweeper.endswith(".BasicSweeper")
    axes = {key: _sweep_values(o, basic) for key, o in merged.items()}
    if None in axes.values():
        return  # a glob sweep: each job is checked when it starts
    swept = [key for key, values in axes.items() if len(values) > 1]
    seen: dict[str, Any] = {}
    for combination in itertools.product(*(axes[key] for key in axes)):
        job = dict(zip(axes, combination, strict=True))
        try:
            job_overrides = [f"{k}={v}" for k, v in job.items()]
            cfg = _compose(job_overrides, config_name)
            _check_job(cfg, config_name, job_overrides, seen, sweeper, checkpoint)
        except SdaanetError as exc:
            if not swept:
                raise
            where = " ".join(f"{key}={job[key]}" for key in swept)
            raise type(exc)(f"{one_line(exc)} (in the sweep's job {where})") from None
