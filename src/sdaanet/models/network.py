"""What a network says about itself to the rest of the package, so that the checkpoint, eval and
predict never name a network's arguments. A network class may define:

- ``summary_line(node) -> str``: its config node in one phrase (checkpoint and eval messages);
- ``TRAINING_ONLY``: the constructor arguments that change training but not the network an
  evaluation builds (eval does not hold a checkpoint to them);
- ``size_problem(size) -> str | None``: why it cannot take ``size`` x ``size`` inputs (predict);
- ``ARGUMENTS``: what its constructor arguments take, checked on the command line before
  anything runs (``sdaanet.rules``): per argument a kind (``"boolean"``, ``"positive"``: an
  integer >= 1, ``"weight"``: a number >= 0, ``"fraction"``: a number in [0, 1],
  ``"positive number"``: > 0, ``"positive numbers"``: a list of them) or a tuple of the values
  it accepts.

A class that defines none of them (a network of your own, ``docs/extending.md``) gets the neutral
defaults below: every argument in its summary, none training-only, any input size, no argument
checked before it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _value(value: Any) -> Any:
    """A nested node by its name (a backbone) or its class, anything else as it is."""
    if isinstance(value, Mapping):
        return value.get("name") or str(value.get("_target_", "?")).rsplit(".", 1)[-1]
    return value


def summary_line(cls: type | None, node: Mapping[str, Any]) -> str:
    """`cls`'s own `summary_line(node)`, else `Name(arg=value, ...)` over the node's arguments."""
    own = getattr(cls, "summary_line", None)
    if callable(own):
        return own(node)
    name = str(node.get("_target_", "?")).rsplit(".", 1)[-1]
    args = ", ".join(f"{k}={_value(v)}" for k, v in node.items() if k != "_target_")
    return f"{name}({args})"


def training_only(cls: type | None) -> frozenset[str]:
    """`cls`'s training-only constructor arguments (none unless it lists them)."""
    return frozenset(getattr(cls, "TRAINING_ONLY", ()))


def size_problem(cls: type | None, size: int) -> str | None:
    """Why `cls` cannot take `size` x `size` inputs, or None (any size unless it has a rule)."""
    own = getattr(cls, "size_problem", None)
    return own(size) if callable(own) else None


def arguments(cls: type | None) -> dict[str, str | tuple[Any, ...]]:
    """What `cls`'s constructor arguments take (none unless it lists them)."""
    return dict(getattr(cls, "ARGUMENTS", {}))
