"""A clean console: a run prints its progress, its results and the warnings that matter.

Off a terminal (a pipe, a file, a batch job's log) the output is plain: no Rich live bar or
table (`on_terminal`; `sdaanet.callbacks.progress_bar`), no ANSI codes.

Filtered where they come from (these exact messages of Lightning), never all warnings:
Lightning's "💡 Tip" adverts, its deprecation of its own pytree call under new torch releases,
and its "modules in eval mode" warning, which the frozen backbone's BatchNorms always trigger
(`FewShotSegmentationModule.on_train_start` warns instead about eval-mode modules outside the
backbone).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


def on_terminal() -> bool:
    """Whether stdout is a terminal: Rich's live progress bar and tables there, plain lines
    elsewhere (a live bar off a terminal shows nothing until it ends)."""
    return sys.stdout.isatty()


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


@contextlib.contextmanager
def setup_lines_once(first: bool) -> Iterator[None]:
    """Lightning's INFO lines about the hardware and precision (printed by every new Trainer)
    only for the `first` of a series of Trainers, e.g. one per evaluation seed."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    if not first:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
