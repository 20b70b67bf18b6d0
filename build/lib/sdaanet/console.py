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
from functools import cache

LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


@cache
def quiet_lightning() -> None:
    """Install the filters once per process."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_NoTips())
    warnings.filterwarnings(
        "ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training"
    )
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
