"""What every ``sdaanet-*`` command does with a bad input: one line ``error: <message>`` on
stderr and exit status 2 (argparse's status for a bad command line), never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sdaanet.errors import SdaanetError, one_line

EXIT_ERROR = 2

P = ParamSpec("P")
R = TypeVar("R")


def entry_point(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command's ``main`` (or a Hydra task function, so that Hydra never sees the error):
    an `SdaanetError` is printed as ``error: <message>`` and raises ``SystemExit(2)``."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SdaanetError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_ERROR) from None

    return wrapper
