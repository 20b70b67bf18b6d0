"""The table every number and switch of the commands is checked against (`RULES`, `CHOICES`,
and the network's own arguments: `network_rules`), and `check_values`, which checks a composed
config against it: one line naming the key, its value and what it takes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sdaanet.checkpoint import network_class
from sdaanet.errors import ConfigError
from sdaanet.models import BACKBONE_NAMES
from sdaanet.models.network import arguments
from sdaanet.runtime import COMPILE_MODES, PRECISIONS

CHOICES = {
    "backbone.name": BACKBONE_NAMES,
    "runtime.precision": PRECISIONS,
    "runtime.compile_mode": COMPILE_MODES,
    "test_ckpt": ("best", "last"),
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
# key a config does not have is skipped). The network's own arguments are the network's to say
# (`ARGUMENTS`, models/network.py: `KINDS` below); what a dataset decides (the fold's range,
# transform recipes, a folder's options) is checked by its datamodule, in `precheck` too.
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
# the kinds of value a network's `ARGUMENTS` name (models/network.py)
KINDS: dict[str, Rule] = {
    "boolean": BOOLEAN,
    "positive": POSITIVE,
    "weight": WEIGHT,
    "fraction": number(0, 1),
    "positive number": number(0, strict=True),
    "positive numbers": list_of(number(0, strict=True), "numbers > 0"),
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


def network_rules(cfg: DictConfig) -> tuple[dict[str, Rule], dict[str, tuple[Any, ...]]]:
    """The `model.<argument>` rules and choices of the configured network, as its class lists
    them (`ARGUMENTS`, models/network.py); none for a network that lists none."""
    target = _value(cfg, "model._target_")
    cls = network_class({"_target_": target}) if isinstance(target, str) else None
    rules, choices = {}, {}
    for name, takes in arguments(cls).items():
        if isinstance(takes, tuple):
            choices[f"model.{name}"] = takes
        else:
            rules[f"model.{name}"] = KINDS[takes]
    return rules, choices


def check_values(cfg: DictConfig) -> None:
    """Raise `ConfigError` naming the first key whose value breaks its `RULES` or `CHOICES`
    entry (or the network's own, `network_rules`), and for a training schedule without end."""
    rules, choices = network_rules(cfg)
    for key, rule in {**RULES, **rules}.items():
        value = _value(cfg, key)
        if value is not _ABSENT and not rule.ok(value):
            example = f", e.g. {key}={rule.example}" if rule.example else ""
            raise ConfigError(f"{key}={_shown(value)} must be {rule.text}{example}")
    for key, allowed in {**choices, **CHOICES}.items():
        value = _value(cfg, key)
        if value not in (_ABSENT, None) and value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
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
