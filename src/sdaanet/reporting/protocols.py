"""The evaluation protocol of a record as the report compares it: the settings two evaluations
must share to be averaged over folds (`SIGNATURE`), their text, and where they differ."""

from __future__ import annotations

from typing import Any

from sdaanet.reporting.cells import Protocol, folds_text

# what two evaluations must share to be averaged over folds ("seeds": how many)
SIGNATURE = (
    "dataset", "shot", "ways", "episodes", "seeds", "input_size", "label_mode", "multiscale",
    "preset", "kshot",
)  # fmt: skip


def signature(record: dict[str, Any]) -> tuple[Any, ...]:
    """The record's values of `SIGNATURE` (its number of seeds, its scales as a tuple)."""
    p = record["protocol"]
    values = {k: p.get(k) for k in SIGNATURE}
    values["seeds"] = len(record["seeds"])
    values["multiscale"] = tuple(p["multiscale"]) if p.get("multiscale") else None
    return tuple(values[k] for k in SIGNATURE)


def _show(value: Any) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _describe(settings: dict[str, Any]) -> str:
    s = settings
    scales = f"multi-scale {_show(s['multiscale'])}" if s["multiscale"] else "single scale"
    text = (
        f"{s['dataset']}, {s['shot']}-shot {s['ways']}-way, {s['episodes']} episodes x "
        f"{s['seeds']} seed{'s' if s['seeds'] != 1 else ''}, input {s['input_size']}, "
        f"label mode {s['label_mode']}, {scales}"
    )
    if s.get("kshot"):
        text += f", K-shot by {s['kshot']}"
    return text


def protocol_of(record: dict[str, Any], registry: dict[tuple[Any, ...], Protocol]) -> Protocol:
    """The registered protocol of `record` (numbered P1, P2, ... as first met)."""
    key = signature(record)
    if key not in registry:
        settings = dict(zip(SIGNATURE, key, strict=True))
        registry[key] = Protocol(f"P{len(registry) + 1}", settings, _describe(settings))
    return registry[key]


def mixed_protocol(signatures: dict[int, tuple[Any, ...]]) -> str | None:
    """`mixed protocol: episodes 40 (fold 1) vs 1000` where the folds' protocols differ."""
    parts = []
    for i, name in enumerate(SIGNATURE):
        folds_of: dict[Any, list[int]] = {}
        for fold, values in sorted(signatures.items()):
            folds_of.setdefault(values[i], []).append(fold)
        if len(folds_of) > 1:
            common = max(folds_of.items(), key=lambda item: len(item[1]))[0]
            others = [
                f"{name} {_show(v)} ({folds_text(f)})" for v, f in folds_of.items() if v != common
            ]
            parts.append(f"{', '.join(others)} vs {_show(common)}")
    return f"mixed protocol: {'; '.join(parts)}" if parts else None


def mismatch(paper: dict[str, Any], protocol: dict[str, Any]) -> str | None:
    """What the paper measured that these records do not (dataset, shot), or None."""
    parts = []
    if paper.get("dataset") not in (None, protocol.get("dataset")):
        parts.append(f"{protocol.get('dataset')} ≠ {paper['dataset']}")
    if paper.get("shot") not in (None, protocol.get("shot")):
        parts.append(f"{protocol.get('shot')}-shot ≠ {paper['shot']}-shot")
    return ", ".join(parts) or None
