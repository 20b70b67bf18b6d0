"""Convert the authors' released SD-AANet / PFENet checkpoints into this package's format.

    sdaanet-convert IN.pth OUT.ckpt [--source sdaanet|pfenet] [--ppm-scales 60 30 15 8] \\
        [--trust-pickle]

The input is read with ``torch.load(weights_only=True)``: a file that also pickles Python objects
(e.g. an ``argparse.Namespace``) is refused unless ``--trust-pickle`` is given, since unpickling
can run arbitrary code.

The authors save ``model.state_dict()`` of a ``DataParallel`` model (keys ``module.*``),
possibly inside ``{"state_dict": ..., "epoch": ..., "optimizer": ...}`` (code map: training). Their
key prefixes map 1:1 onto ours (``AUTHORS_KEY_PREFIXES``). The architecture (model, backbone,
reduce_dim, SDPM/SAAM switches, number of decoder bins) is inferred from the keys and shapes
and recorded as the checkpoint's network node (``hyper_parameters.description``); every key
and shape is checked against the network that node builds, so a conversion is either complete
or an error.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sdaanet.checkpoint import FORMAT, summary
from sdaanet.cli import entry_point
from sdaanet.errors import CheckpointError, ConfigError
from sdaanet.io import atomic_write, load_torch
from sdaanet.models import AUTHORS_KEY_PREFIXES

SOURCES = ("sdaanet", "pfenet")
PASCAL_PPM_SCALES: tuple[float, ...] = (60, 30, 15, 8)
COCO_PPM_SCALES: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
PREFIX = "net."

# (bottleneck?, number of layer3 blocks) -> backbone name
_RESNETS = {(True, 6): "resnet50", (True, 23): "resnet101", (False, 2): "resnet18"}
_RESNETS[(False, 6)] = "resnet34"


def _head(keys: Sequence[str], n: int = 5) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _unwrap(checkpoint: Any) -> dict[str, Tensor]:
    """The raw state dict: unwrap ``{"state_dict": ...}``, strip ``module.``."""
    if isinstance(checkpoint, nn.Module):
        checkpoint = checkpoint.state_dict()
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"expected a state dict (a mapping), got {type(checkpoint).__name__}")
    if not checkpoint:
        raise CheckpointError("the checkpoint's state dict is empty")
    state: dict[str, Tensor] = {}
    for key, value in checkpoint.items():
        if not isinstance(key, str):
            raise CheckpointError(f"state dict key {key!r} is not a string")
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"state dict entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state[key.removeprefix("module.")] = value
    if any(k.startswith(PREFIX) for k in state):
        raise CheckpointError(
            f"keys such as {next(k for k in state if k.startswith(PREFIX))!r} start with "
            f"{PREFIX!r}: this looks like an sdaanet checkpoint already (no conversion needed)"
        )
    return state


def _rename(key: str) -> str | None:
    for theirs, ours in AUTHORS_KEY_PREFIXES.items():
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return None


def _require(state: Mapping[str, Tensor], key: str) -> Tensor:
    if key not in state:
        raise CheckpointError(f"cannot infer the architecture: key {key!r} is missing")
    return state[key]


def _infer_backbone(state: Mapping[str, Tensor]) -> str:
    stem = _require(state, "layer0.0.weight")
    if "layer1.0.conv1.weight" not in state:  # VGG: layerN.i.weight/bias, no residual blocks
        if "layer0.0.bias" in state and _shape(stem) == (64, 3, 3, 3):
            return "vgg16_bn"
        raise CheckpointError(
            "cannot infer the backbone: no 'layer1.0.conv1.weight' (ResNet) and layer0.0 is not "
            f"a VGG-16-bn conv (shape {_shape(stem)})"
        )
    bottleneck = "layer1.0.conv3.weight" in state
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"layer3\.(\d+)\.", k))}
    n3 = max(blocks) + 1 if blocks else 0
    name = _RESNETS.get((bottleneck, n3))
    if name is None:
        kind = "bottleneck" if bottleneck else "basic-block"
        raise CheckpointError(f"cannot infer the backbone: {kind} ResNet with {n3} layer3 blocks")
    deep = "layer0.3.weight" in state or "layer0.6.weight" in state
    if deep:
        if not bottleneck or _shape(stem) != (64, 3, 3, 3) or "layer0.6.weight" not in state:
            raise CheckpointError(
                f"cannot infer the backbone: unexpected deep stem (layer0.0.weight {_shape(stem)}, "
                f"layer0.3 {'layer0.3.weight' in state}, layer0.6 {'layer0.6.weight' in state})"
            )
        return f"{name}_deep"
    if _shape(stem) != (64, 3, 7, 7):
        raise CheckpointError(
            f"cannot infer the backbone: layer0.0.weight {_shape(stem)} is neither the "
            "torchvision 7x7 stem (64x3x7x7) nor a deep stem (64x3x3x3 with layer0.3/layer0.6)"
        )
    return name


def infer_architecture(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """What the authors' keys say: model, backbone, reduce_dim, sdpm, saam, n_bins, evidence."""
    state = _unwrap(state_dict)
    backbone = _infer_backbone(state)
    reduce_dim = _shape(_require(state, "down_query.0.weight"))[0]
    n_se = sum(k.startswith("se_supp.") for k in state)
    n_saam = sum(k.startswith(("simple_mask.", "s_cls.", "q_maskgeneration.")) for k in state)
    merge_in = _shape(_require(state, "init_merge.0.0.weight"))[1]
    bins = {int(m.group(1)) for k in state if (m := re.match(r"init_merge\.(\d+)\.", k))}
    sdpm, saam = n_se > 0, n_saam > 0
    name = "sdaanet" if (sdpm or saam) else "pfenet"
    evidence = (
        f"se_supp.* {'present' if sdpm else 'absent'} ({n_se} keys), "
        f"simple_mask/s_cls/q_maskgeneration.* {'present' if saam else 'absent'} "
        f"({n_saam} keys), init_merge.0.0.weight has {merge_in} input channels "
        f"(reduce_dim {reduce_dim}: {2 * reduce_dim + 1} = PFENet, {2 * reduce_dim + 2} = SD-AANet)"
    )
    if merge_in != 2 * reduce_dim + 1 + int(saam):
        raise CheckpointError(f"inconsistent checkpoint: {evidence}")
    return {
        "name": name,
        "backbone": backbone,
        "reduce_dim": reduce_dim,
        "sdpm": sdpm,
        "saam": saam,
        "n_bins": max(bins) + 1 if bins else 0,
        "evidence": evidence,
    }


def _network(arch: Mapping[str, Any], ppm_scales: Sequence[float], shot: int) -> dict[str, Any]:
    """The network node (``conf/model``) of the inferred architecture."""
    from omegaconf import OmegaConf

    from sdaanet.config import compose_config

    cfg = compose_config([f"model={arch['name']}", f"backbone={arch['backbone']}"])
    node: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
    node.update(
        shot=int(shot),
        ppm_scales=[int(s) if isinstance(s, int) else float(s) for s in ppm_scales],
        reduce_dim=int(arch["reduce_dim"]),
        sdpm=bool(arch["sdpm"]),
        saam=bool(arch["saam"]),
    )
    return node


def _expected_state(network: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the network node's state dict (built on the meta device, no weights)."""
    from sdaanet.checkpoint import build_network

    with torch.device("meta"):
        net = build_network(network)
    return {k: _shape(v) for k, v in net.state_dict().items()}


def convert_authors_checkpoint(
    state_dict: Mapping[str, Any],
    source: str | None = None,
    *,
    ppm_scales: Sequence[float] | None = None,
    shot: int = 1,
    n_test_classes: int = 5,
) -> dict[str, Any]:
    """Turn the authors' checkpoint into ``{"state_dict": {"net.*"}, "hyper_parameters": ...}``.

    Args:
        state_dict: a raw state dict or ``{"state_dict": ...}``; keys with or without ``module.``.
        source: ``"sdaanet"`` or ``"pfenet"``; must agree with the keys (``None``: inferred).
        ppm_scales: decoder bins (default PASCAL's [60, 30, 15, 8]); their number must match
            the checkpoint's ``init_merge`` heads. COCO models use [1.0, 0.5, 0.25, 0.125].
        shot: recorded in the description (the weights do not depend on it).
        n_test_classes: recorded in ``hyper_parameters`` (5 for PASCAL-5i, 20 for COCO-20i).

    Raises CheckpointError (a ValueError) for unknown keys, keys missing or mis-shaped against
    the network the inferred config builds, or a ``source`` the keys contradict. Tensors are not
    copied.
    """
    if source is not None and source not in SOURCES:
        raise ConfigError(f"source must be one of {SOURCES}, got {source!r}")
    state = _unwrap(state_dict)
    _check_known(state)
    arch = infer_architecture(state)
    if source is not None and source != arch["name"]:
        raise CheckpointError(
            f"source={source!r} but the keys say {arch['name']!r}: {arch['evidence']}"
        )
    network = _network(arch, _decoder_scales(arch, ppm_scales), shot)
    converted = {PREFIX + str(_rename(k)): v for k, v in state.items()}
    _check_against(converted, _expected_state(network), arch)
    return {
        "state_dict": converted,
        "hyper_parameters": {
            "description": {
                "format": FORMAT,
                "network": network,
                "shot": int(shot),
                "input_size": None,
                "data": None,
                "selection": "novel",
            },
            "n_test_classes": int(n_test_classes),
        },
        "sdaanet_converted_from": source or arch["name"],
    }


def _check_known(state: Mapping[str, Tensor]) -> None:
    """Every key must be one of the authors' (``AUTHORS_KEY_PREFIXES``)."""
    unknown = sorted(k for k in state if _rename(k) is None)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} unknown key(s) (not an SD-AANet/PFENet checkpoint?): {_head(unknown)}"
        )


def _decoder_scales(arch: Mapping[str, Any], ppm_scales: Sequence[float] | None) -> list[float]:
    """``ppm_scales`` (default PASCAL's), one per ``init_merge`` head of the checkpoint."""
    scales = list(PASCAL_PPM_SCALES if ppm_scales is None else ppm_scales)
    if len(scales) != arch["n_bins"]:
        raise CheckpointError(
            f"the checkpoint has {arch['n_bins']} decoder bins (init_merge.0..{arch['n_bins'] - 1})"
            f" but ppm_scales={scales} has {len(scales)}: pass matching ppm_scales"
        )
    return scales


def _check_against(
    converted: Mapping[str, Tensor], shapes: Mapping[str, tuple[int, ...]], arch: Mapping[str, Any]
) -> None:
    """The converted keys are exactly the network's (``shapes``, without ``net.``), shapes too."""
    expected = {PREFIX + k: s for k, s in shapes.items()}
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise CheckpointError(
            f"{len(missing)} key(s) of model={arch['name']} backbone={arch['backbone']} are "
            f"missing from the checkpoint: {_head(missing)}"
        )
    extra = sorted(set(converted) - set(expected))
    if extra:
        raise CheckpointError(
            f"{len(extra)} key(s) have no place in model={arch['name']} "
            f"backbone={arch['backbone']}: {_head(extra)}"
        )
    bad = [
        f"{k}: checkpoint {_shape(converted[k])} vs model {expected[k]}"
        for k in sorted(expected)
        if _shape(converted[k]) != expected[k]
    ]
    if bad:
        raise CheckpointError(f"{len(bad)} shape mismatch(es): {'; '.join(bad[:5])}")


def eval_command(path: str | Path, network: Mapping[str, Any]) -> str:
    """The ``sdaanet-eval`` command line for a converted checkpoint: the network comes from the
    checkpoint; the dataset follows from its decoder bins (COCO's fractions, else PASCAL)."""
    scales = tuple(float(s) for s in network["ppm_scales"])
    data = "coco" if scales == COCO_PPM_SCALES else "pascal"
    return f"sdaanet-eval ckpt_path={path} data={data}"


def load_authors_file(path: str | Path, trust_pickle: bool = False) -> Any:
    """``torch.load`` on CPU: tensors and plain containers only, unless ``trust_pickle`` allows
    full unpickling (the authors' files may pickle e.g. an ``argparse.Namespace``), which can
    run arbitrary code."""
    return load_torch(
        path,
        f"input checkpoint {path}",
        trust_pickle=trust_pickle,
        pickle_hint="pass --trust-pickle to load it anyway, only if you trust its source",
    )


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """``sdaanet-convert IN.pth OUT.ckpt [--source sdaanet|pfenet] [--ppm-scales ...]
    [--trust-pickle]``."""
    parser = argparse.ArgumentParser(
        prog="sdaanet-convert",
        description="Convert the authors' SD-AANet/PFENet checkpoint into an sdaanet checkpoint.",
    )
    parser.add_argument("input", type=Path, help="the authors' .pth (train_epoch_*.pth, final.pth)")
    parser.add_argument("output", type=Path, help="the sdaanet checkpoint to write (.ckpt)")
    parser.add_argument("--source", choices=SOURCES, default=None, help="default: from the keys")
    parser.add_argument(
        "--ppm-scales",
        type=float,
        nargs="+",
        default=None,
        help="decoder bins (default PASCAL 60 30 15 8; COCO models: 1.0 0.5 0.25 0.125)",
    )
    parser.add_argument("--shot", type=int, default=1, help="shot recorded in model_cfg")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also load input files that hold pickled Python objects (weights_only=False): "
        "unpickling can run arbitrary code, so only use it for files from a trusted source",
    )
    args = parser.parse_args(argv)
    scales = args.ppm_scales
    coco = scales is not None and tuple(scales) == COCO_PPM_SCALES
    ckpt = convert_authors_checkpoint(
        load_authors_file(args.input, args.trust_pickle),
        args.source,
        ppm_scales=scales,
        shot=args.shot,
        n_test_classes=20 if coco else 5,
    )
    try:
        atomic_write(args.output, lambda f: torch.save(ckpt, f))
    except OSError as exc:
        raise CheckpointError(f"cannot write {args.output}: {exc}") from exc
    network = ckpt["hyper_parameters"]["description"]["network"]
    print(
        f"converted {ckpt['sdaanet_converted_from']} checkpoint ({summary(network)}) to "
        f"{args.output}; evaluate with: {eval_command(args.output, network)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
