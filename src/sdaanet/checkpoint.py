"""Checkpoints that describe themselves: what every checkpoint records (`describe`), reading
one safely (`read_checkpoint`: tensors and plain containers only, never code), and rebuilding
its network: `network_from_checkpoint` (eval, predict and, through `load_predictor`, the
notebook) over `build_network`, the one builder of a network node without backbone weights
(also used by convert and complexity). Checkpoints of the previous format
(`hyper_parameters.model_cfg`) keep loading."""

from __future__ import annotations

import copy
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from sdaanet.data.datamodule import recorded_settings
from sdaanet.errors import CheckpointError, CheckpointMismatchError, ConfigError
from sdaanet.io import atomic_write, pickled_objects
from sdaanet.layout import BEST, LAST, checkpoints_dir, last_checkpoint

FORMAT = 2  # 1: hyper_parameters.model_cfg (flat); 2: hyper_parameters.description
NETWORK_PACKAGE = "sdaanet.models"
# packages whose networks a checkpoint may name (`_target_`); a network of your own project
# adds its package here (docs/extending.md), nothing else is ever built from a checkpoint
NETWORK_PACKAGES = [NETWORK_PACKAGE]
_KEPT: dict[tuple[Path, int, int], dict[str, Any]] = {}  # see keep_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes with `sdaanet.io.atomic_write`: a killed run never leaves a truncated `.ckpt`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = str(path)
        if "://" in path:  # remote filesystems keep Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Resuming reads tensors and plain containers only (`weights_only=True`), never code."""
        return read_checkpoint(path)


def _stamp(path: Path) -> tuple[Path, int, int]:
    """What identifies a file's contents here: its resolved path, mtime and size."""
    stat = path.stat()
    return path.resolve(), stat.st_mtime_ns, stat.st_size


def keep_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Hold `checkpoint`, just read from `path`, for the next `read_checkpoint(path,
    reuse=True)` (while the file is unchanged): the eval precheck hands its reading to the
    evaluation, so that one `sdaanet-eval` reads the file once. One is held at a time."""
    _KEPT.clear()
    _KEPT[_stamp(Path(path))] = checkpoint


def read_checkpoint(
    path: str | Path, hint: str = "pass ckpt_path=<file>.ckpt", *, reuse: bool = False
) -> dict[str, Any]:
    """Load a checkpoint file on CPU with `torch.load(weights_only=True)`: a file holding pickled
    Python objects (which could run code) is refused; every error is one line naming the file.
    With `reuse`, the reading `keep_checkpoint` holds for this unchanged file is handed over
    (once) instead."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} ({hint})")
    if reuse and (kept := _KEPT.pop(_stamp(path), None)) is not None:
        return kept
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if pickled_objects(exc) is None:  # a garbage file fails weights_only loading too
            raise CheckpointError(
                f"cannot read checkpoint {path}: not a torch checkpoint"
            ) from None
        raise CheckpointError(
            f"refused to load {path}: it holds pickled Python objects, and unpickling them can run "
            "code; only tensors and plain containers are read (re-save its state_dict, or convert "
            "an authors' file with sdaanet-convert)"
        ) from None
    except Exception as exc:  # truncated, not a torch file
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path}: truncated or not a torch checkpoint ({reason})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def unweighted(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What describes a checkpoint (what `description` and `selected_on` read), without its
    weights and optimiser state."""
    return {k: v for k, v in checkpoint.items() if k in ("hyper_parameters", "callbacks")}


def resolve_checkpoint(path: str | Path | None) -> Path:
    """`path`, or for a training run's directory the checkpoint its end-of-run evaluation takes:
    the one `best-*.ckpt` (the newest if several), else `last.ckpt`. An evaluation's
    `ckpt_path`: refused when not set."""
    if not path:
        raise CheckpointError("ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt")
    path = Path(path)
    if not path.is_dir():
        return path
    folder = checkpoints_dir(path)
    best = sorted(folder.glob(BEST), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    if last_checkpoint(path).is_file():
        return last_checkpoint(path)
    raise CheckpointError(
        f"no checkpoint in {folder} ({BEST} or {LAST}): pass a training run's directory "
        "or ckpt_path=<file>.ckpt"
    )


def selected_on(path: str | Path, checkpoint: Mapping[str, Any], selection: str) -> str:
    """How the checkpoint at `path` was chosen: `selection` ("novel"/"base": best validation
    class-mIoU on that split), "last" (the final one, no selection), or "unknown" (a renamed
    file). A checkpoint without Lightning's callback states (converted) keeps `selection`."""
    states = checkpoint.get("callbacks")
    name = Path(path).name
    if Path(path).stem == "last":
        return "last"
    if not states:
        return selection
    for key, state in states.items():
        best = state.get("best_model_path") if isinstance(state, Mapping) else None
        if str(key).startswith("ModelCheckpoint") and best and Path(best).name == name:
            return selection if state.get("monitor") else "last"
    return "unknown"


def describe(cfg: Any, selection: str = "novel") -> dict[str, Any]:
    """What every checkpoint records: the network node, shot, input size and data settings, the
    run's configuration (its experiment and command-line overrides, for the report) and whether
    it is a plumbing-only run (`plumbing_only`, set by debug=tiny)."""
    from omegaconf import OmegaConf

    from sdaanet.config import job_configuration

    return {
        "format": FORMAT,
        "network": OmegaConf.to_container(cfg.model, resolve=True),
        "shot": int(cfg.shot),
        "input_size": int(cfg.data.val_size),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "selection": selection,
        "configuration": job_configuration(),
        "plumbing_only": bool(cfg.get("plumbing_only", False)),
    }


def _legacy_network(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The network node of a format-1 `model_cfg` (flat keys, `name`, `multiclass`, `ways`)."""
    from omegaconf import OmegaConf

    from sdaanet.config import CONF_DIR

    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "sdaanet.yaml"))
    node = {k: v for k, v in defaults.items() if k != "defaults" and not str(v).startswith("${")}
    node.update({k: v for k, v in model_cfg.items() if k not in ("name", "multiclass", "ways")})
    backbone = model_cfg.get("backbone", "resnet50")
    backbone = {"name": backbone} if isinstance(backbone, str) else dict(backbone)
    node["backbone"] = {"_target_": f"{NETWORK_PACKAGE}.build_backbone", **backbone}
    if model_cfg.get("multiclass") or int(model_cfg.get("ways", 1)) > 1:
        node["_target_"] = f"{NETWORK_PACKAGE}.MultiClassSDAANet"
        node["ways"] = int(model_cfg["ways"])
    return node


def description(checkpoint: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's `describe` record; built from `model_cfg` for a format-1 checkpoint
    (whose data settings were not recorded: `data` is None). A network node naming code that is
    not a network is refused here, before anything reads it (`_check_targets`)."""
    hp = checkpoint.get("hyper_parameters") or {}
    if isinstance(hp.get("description"), Mapping):
        info = copy.deepcopy(dict(hp["description"]))
        _check_targets(info.get("network"), path)
        return {**info, "data": recorded_settings(info.get("data"))}
    legacy = hp.get("model_cfg")
    if not isinstance(legacy, Mapping):
        raise CheckpointError(
            f"checkpoint {path} records no network (not an sdaanet checkpoint? convert the "
            "authors' .pth files with sdaanet-convert)"
        )
    return {
        "format": 1,
        "network": _legacy_network(legacy),
        "shot": int(legacy.get("shot", 1)),
        "input_size": hp.get("input_size"),
        "data": None,
        "selection": hp.get("selection", "novel"),
    }


def _resolve(target: str) -> Any:
    """What `target` names when it lies in a package of `NETWORK_PACKAGES` (checked before any
    import), else None."""
    from hydra.utils import get_method

    if not any(target.startswith(f"{p}.") for p in NETWORK_PACKAGES):
        return None
    try:
        obj = get_method(target)
    except Exception:
        return None
    module = str(getattr(obj, "__module__", ""))
    known = any(module == p or module.startswith(f"{p}.") for p in NETWORK_PACKAGES)
    return obj if known else None


def network_class(node: Mapping[str, Any]) -> type[nn.Module] | None:
    """The network class a node's `_target_` names, resolved as checkpoints are (`_resolve`);
    None when it names none."""
    obj = _resolve(str(node.get("_target_", "")))
    return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None


CONFIG = "<config>"  # build_network's `path` for a node composed from the configs


def _check_targets(node: Any, path: str | Path) -> None:
    """Every `_target_` of a network node must be a network or backbone builder of
    `sdaanet.models`, so a crafted checkpoint cannot name code to run."""
    from sdaanet.models import build_backbone

    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None:
            target = str(target)
            obj = _resolve(target)
            network = isinstance(obj, type) and issubclass(obj, nn.Module)
            if not (network or obj is build_backbone):
                where = "the model config" if path == CONFIG else f"checkpoint {path}"
                raise CheckpointError(
                    f"{where} names _target_ {target!r}, which is not a network of "
                    f"{', '.join(NETWORK_PACKAGES)}; refusing to build it (a network of your own: "
                    "add its package to sdaanet.checkpoint.NETWORK_PACKAGES)"
                )
        for value in node.values():
            _check_targets(value, path)
    elif isinstance(node, list):
        for value in node:
            _check_targets(value, path)


def build_network(
    node: Mapping[str, Any], path: str | Path = CONFIG, backbone_weights: bool = False
) -> nn.Module:
    """Instantiate a network node (`conf/model`); a bad value raises the network's own error.

    Without `backbone_weights` the backbone's weights file is not read and no random-weights
    warning is due (a checkpoint holds the backbone's weights; complexity needs none)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    _check_targets(node, path)
    node = copy.deepcopy(dict(node))
    if not backbone_weights and isinstance(node.get("backbone"), Mapping):
        node["backbone"] = {**node["backbone"], "weights": None}
    try:
        with warnings.catch_warnings():
            if not backbone_weights:
                warnings.filterwarnings("ignore", message=".*RANDOM weights", category=UserWarning)
            return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        unknown = re.search(r"(\S+)\(\) got an unexpected keyword argument '(\w+)'", str(cause))
        if isinstance(cause, TypeError) and unknown:
            raise ConfigError(
                f"the network node sets {unknown[2]}, which {unknown[1]} does not take: remove it "
                f"('~model.{unknown[2]}' on the command line, or from the config)"
            ) from None
        raise cause from None


def network_from_checkpoint(
    path: str | Path, checkpoint: Mapping[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The network a checkpoint records, with its weights (eval mode), and its description."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    info = description(checkpoint, path)
    net = build_network(info["network"], path)
    try:
        load_network_weights(net, checkpoint)
    except CheckpointMismatchError as exc:
        raise CheckpointMismatchError(f"{path}: {exc}") from None
    return net.eval(), info


def load_network_weights(net: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Load the `net.` part of a Lightning checkpoint into `net`, strictly.

    Raises CheckpointMismatchError naming the missing, unexpected and mis-shaped keys.
    """
    state = checkpoint.get("state_dict", checkpoint)
    prefix = "net."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = net.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = sorted(
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(weights)
        if weights[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            "checkpoint does not match the configured network: "
            + "; ".join(
                f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for label, keys in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("shape mismatch", shapes),
                )
                if keys
            )
        )
    net.load_state_dict(weights, strict=True)


def summary(network: Mapping[str, Any]) -> str:
    """A network node in one phrase, as its class says (`sdaanet.models.network.summary_line`),
    e.g. `SDAANet(backbone=resnet18, reduce_dim=64, sdpm, saam)`."""
    from sdaanet.models.network import summary_line

    return summary_line(network_class(network), network)


def training_only(network: Mapping[str, Any]) -> frozenset[str]:
    """The node's arguments that its class lists as training-only (`models/network.py`)."""
    from sdaanet.models.network import training_only as listed

    return listed(network_class(network))


def load_compatible(
    net: nn.Module, checkpoint: dict[str, Any], path: str | Path, shot: int
) -> None:
    """Load the weights of `checkpoint` (read from `path`) into `net`, refusing one trained for
    another shot count or holding another architecture; every error names the file."""
    info = description(checkpoint, path)
    k = info["shot"]
    if int(k) != int(shot):
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained {k}-shot but shot={shot} is configured: pass "
            f"shot={k}, or a {shot}-shot checkpoint"
        )
    try:
        load_network_weights(net, checkpoint)
    except CheckpointMismatchError as exc:
        raise CheckpointMismatchError(
            f"{path}: {exc}; the checkpoint holds {summary(info['network'])}: pass the same "
            "overrides"
        ) from None
