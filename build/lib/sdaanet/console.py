"""A clean console: a run prints its progress, its results and the warnings that matter.

Filtered where they come from (these exact messages of Lightning), never all warnings:
Lightning's "💡 Tip" adverts, its deprecation of its own pytree call under new torch releases,
and its "modules in eval mode" warning, which the frozen backbone's BatchNorms always trigger
(`FewShotSegmentationModule.on_train_start` warns instead about eval-mode modules outside the
backbone).
"""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


NOISE = (
    r"Found \d+ module\(s\) in eval mode at the start of training",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def quiet_lightning() -> None:
    """Install the filters (again where a `warnings.catch_warnings` block reset them)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in logger.filters):
            logger.addFilter(_NoTips())
    for message in NOISE:  # filterwarnings moves an existing identical filter to the front
        warnings.filterwarnings("ignore", message=message)
