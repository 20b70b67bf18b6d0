"""Every bad setting is one line, before anything is written: `check_config` on a composed
config (every key of `RULES` typed and range-checked, the choices, the combinations), and
`precheck` on a command line (each job of a multirun) before Hydra creates a run folder."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sdaanet.data.datamodule import MOVED_SETTINGS
from sdaanet.errors import ConfigError, SdaanetError, one_line
from sdaanet.models.backbones import BACKBONE_NAMES
from sdaanet.models.sdpm import KSHOT_STRATEGIES, QUERY_REWEIGHTS, TEACHERS
from sdaanet.runtime import COMPILE_MODES, PRECISIONS
from sdaanet.sweep import MULTIRUN_FLAGS, sweeper_target

# what Hydra's override grammar refuses in an unquoted value (a path), or reads as a sweep
GRAMMAR_CHARS = ("=", ",", "[", "]", "{", "}", "(", ")", "'", '"', "~", "#", "!", "&", ";", "^")
CHOICES = {
    "model.kshot_strategy": KSHOT_STRATEGIES,
    "model.teacher": TEACHERS,
    "model.query_reweight": QUERY_REWEIGHTS,
    "backbone.name": BACKBONE_NAMES,
    "runtime.precision": PRECISIONS,
    "runtime.compile_mode": COMPILE_MODES,
    "test_ckpt": ("best", "last"),
    "mode": ("test", "complexity"),
    "eval.kshot": ("fusion", "voting"),
}


@dataclass(frozen=True)
class Rule:
    """What a key takes: `ok(value)`, the words for it, and a value to show as an example."""

    ok: Callable[[Any], bool]
    text: str
    example: str | None = None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return (_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """An integer in `low..high` (either end open when None); `bool` is not one."""
    if high is not None:
        text = f"an integer in {low}..{high}"
    else:
        text = {None: "an integer", 0: "an integer >= 0", 1: "a positive integer"}.get(
            low, f"an integer >= {low}"
        )
    return Rule(
        lambda v: _int(v) and (low is None or v >= low) and (high is None or v <= high),
        text,
        "1" if low == 1 else None,
    )


def number(low: float, high: float | None = None, strict: bool = False) -> Rule:
    """A finite number (an integer too) >= `low` (> with `strict`) and <= `high`."""
    if high is not None:
        text = f"a number in {'(' if strict else '['}{low}, {high}{')' if strict else ']'}"
    else:
        text = f"a number {'>' if strict else '>='} {low}"

    def ok(v: Any) -> bool:
        above = _number(v) and (v > low if strict else v >= low)
        return above and (high is None or (v < high if strict else v <= high))

    return Rule(ok, text)


def either(*rules: Rule) -> Rule:
    return Rule(
        lambda v: any(r.ok(v) for r in rules),
        " or ".join(r.text for r in rules),
        next((r.example for r in rules if r.example), None),
    )


def exactly(value: Any) -> Rule:
    return Rule(lambda v: _int(v) and v == value, str(value))


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"{rule.text} or null", rule.example)


def list_of(rule: Rule, items: str) -> Rule:
    """A list whose every item is `rule` (`items`: the plural words for them)."""
    return Rule(lambda v: isinstance(v, list) and all(map(rule.ok, v)), f"a list of {items}")


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")
POSITIVE = integer(1)
SEED = integer(0, 2**32 - 1)  # numpy's and Lightning's seed range
WEIGHT = number(0)  # a loss weight
STEPS = either(POSITIVE, exactly(-1))  # Lightning's -1: no limit of its own (see _check_length)
BATCHES = either(integer(0), number(0, 1))  # Lightning's limit_*_batches: a count or a fraction
# Every number and switch the commands take, typed and range-checked before anything runs (a
# key a config does not have is skipped). What a dataset decides (the fold's range, transform
# recipes, a folder's options) is checked by its datamodule, in `precheck` too.
RULES: dict[str, Rule] = {
    "shot": POSITIVE,
    "seed": SEED,
    "deterministic": BOOLEAN,
    "test": BOOLEAN,
    "resume": BOOLEAN,
    "plumbing_only": BOOLEAN,
    "data.fold": integer(0),
    "data.num_folds": POSITIVE,
    "data.ways": POSITIVE,
    "data.train_size": POSITIVE,
    "data.val_size": POSITIVE,
    "data.batch_size": POSITIVE,
    "data.val_batch_size": POSITIVE,
    "data.val_episodes": POSITIVE,
    "data.train_episodes": optional(POSITIVE),
    "data.num_workers": integer(0),
    "data.min_area": integer(0),
    "data.val_seed": SEED,
    "data.holdout_seed": SEED,
    "data.holdout_fraction": number(0, 1, strict=True),
    "model.ppm_scales": list_of(number(0, strict=True), "numbers > 0"),
    "data.pin_memory": BOOLEAN,
    "data.strict_query_classes": BOOLEAN,
    "data.drop_novel_images": BOOLEAN,
    "data.return_raw_label": BOOLEAN,
    "data.source.seed": SEED,
    "data.source.split_seed": SEED,
    "data.source.image_size": POSITIVE,
    "data.source.num_train": POSITIVE,
    "data.source.num_val": POSITIVE,
    "data.source.void_width": integer(0),
    "data.source.distractor_probs": list_of(number(0), "numbers >= 0"),
    "data.source.cache": BOOLEAN,
    "model.alpha": WEIGHT,
    "model.beta": WEIGHT,
    "model.aux_weight": WEIGHT,
    "model.kd_alpha": WEIGHT,
    "model.kd_temperature": number(0, strict=True),
    "model.mask_eps": number(0, strict=True),
    "model.dropout": number(0, 1),
    "model.reduce_dim": POSITIVE,
    "model.sdpm": BOOLEAN,
    "model.saam": BOOLEAN,
    "backbone.freeze_bn": BOOLEAN,
    "optimizer.lr": number(0, strict=True),
    "optimizer.momentum": number(0, 1),
    "optimizer.weight_decay": number(0),
    "optimizer.betas": list_of(number(0, 1), "numbers in [0, 1]"),
    "scheduler.power": number(0),
    "trainer.max_epochs": STEPS,
    "trainer.max_steps": STEPS,
    "trainer.min_epochs": optional(integer(0)),
    "trainer.min_steps": optional(integer(0)),
    "trainer.check_val_every_n_epoch": optional(POSITIVE),
    "trainer.val_check_interval": optional(either(POSITIVE, number(0, 1))),
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.num_sanity_val_steps": integer(-1),
    "trainer.limit_train_batches": BATCHES,
    "trainer.limit_val_batches": BATCHES,
    "trainer.limit_test_batches": BATCHES,
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.gradient_clip_val": optional(number(0)),
    "runtime.fast": BOOLEAN,
    "runtime.channels_last": BOOLEAN,
    "runtime.compile": BOOLEAN,
    "eval.seeds": list_of(SEED, "seeds (integers in 0..2**32-1)"),
    "eval.multiscale": optional(list_of(POSITIVE, "positive integers")),
    "eval.protocol.seeds": list_of(SEED, "seeds (integers in 0..2**32-1)"),
    "complexity.size": POSITIVE,
    "complexity.warmup": integer(0),
    "complexity.repeats": POSITIVE,
    "complexity.batch": POSITIVE,
    "callbacks.progress_bar.every_n_steps": POSITIVE,
    "pretrain.steps": POSITIVE,
    "pretrain.batch_size": POSITIVE,
    "pretrain.lr": number(0, strict=True),
    "pretrain.size": POSITIVE,
    "pretrain.every_n_steps": POSITIVE,
}
_ABSENT = object()


def _shown(value: Any) -> str:
    """A value as it is written on the command line: `abc`, `[a,1]`, `null`, `true`."""
    if isinstance(value, list):
        return f"[{','.join(map(_shown, value))}]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value of `key` as plain Python, or `_ABSENT` where the config has none."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None
    return value


def check_values(cfg: DictConfig) -> None:
    """Raise `ConfigError` naming the first key whose value breaks its `RULES` or `CHOICES`
    entry, and for a training schedule without end."""
    for key, rule in RULES.items():
        value = _value(cfg, key)
        if value is not _ABSENT and not rule.ok(value):
            example = f", e.g. {key}={rule.example}" if rule.example else ""
            raise ConfigError(f"{key}={_shown(value)} must be {rule.text}{example}")
    for key, choices in CHOICES.items():
        value = _value(cfg, key)
        if value not in (_ABSENT, None) and value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    _check_length(cfg)


def _check_length(cfg: DictConfig) -> None:
    """Lightning's `max_epochs=-1` trains until `max_steps`; with neither the poly schedule
    (whose length is the number of steps) has no end."""
    epochs, steps = _value(cfg, "trainer.max_epochs"), _value(cfg, "trainer.max_steps")
    if epochs == -1 and steps in (-1, _ABSENT):
        raise ConfigError(
            "trainer.max_epochs=-1 trains without end, and the learning-rate schedule needs a "
            "length: give trainer.max_epochs=N, or with -1 also +trainer.max_steps=N"
        )


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
        key = arg.lstrip("+~").partition("=")[0]
        now = MOVED_SETTINGS.get(key.removeprefix("data.")) if key.startswith("data.") else None
        if now:
            raise ConfigError(f"{key} is now {now}: pass {now}={arg.partition('=')[2]} instead")
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
    if config_name == "eval":
        if cfg.get("mode") != "test" or not checkpoint:
            return
        cfg = _check_evaluation(cfg, overrides, seen)
    key = OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, ["data", "shot", "seed"]))
    if key not in seen:  # the dataset's files, before Hydra makes a run folder
        build_datamodule(cfg, stage="test" if config_name == "eval" else None)
        seen[key] = True


def _check_evaluation(cfg: DictConfig, overrides: Sequence[str], seen: dict[str, Any]) -> Any:
    """The checkpoint (missing, unreadable, unsafe, not an sdaanet one; read once) and what the
    evaluation takes from it (`sdaanet.evaluation.from_checkpoint`: the shot, the network, the
    data), silently; returns the evaluation's config with the test protocol applied."""
    from sdaanet.checkpoint import description, read_checkpoint, resolve_checkpoint
    from sdaanet.evaluation import from_checkpoint
    from sdaanet.protocols import apply_protocol

    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt")
    if (given := str(cfg.ckpt_path)) not in seen:
        path = resolve_checkpoint(given)
        seen[given] = (path, description(read_checkpoint(path), path))
    path, info = seen[given]
    cfg = copy.deepcopy(cfg)
    from_checkpoint(cfg, info, str(path), overrides)  # its line is the run's to print
    apply_protocol(cfg)
    return cfg


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
