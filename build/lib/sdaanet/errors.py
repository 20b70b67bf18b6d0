"""The errors the package raises for bad input: `SdaanetError` and its kinds.

`str(err)` of each is one line naming the offending file or value. Every kind also derives from
the builtin it replaces (`ValueError`, `FileNotFoundError`, `RuntimeError`), so callers may catch
either. The `sdaanet-*` commands print any of them as `error: <message>` (`sdaanet.cli`).
"""

from __future__ import annotations

import builtins
import re


class SdaanetError(Exception):
    """Base of every user-facing error of the package."""


class ConfigError(SdaanetError, ValueError):
    """A setting with no valid meaning (an unknown option, a value out of range)."""


class DataConfigError(ConfigError):
    """The data config asks for something the dataset cannot give (a fold out of range, an
    unknown transform recipe, ``ways`` larger than the classes)."""


class DataNotFoundError(SdaanetError, FileNotFoundError):
    """A dataset root or one of its required files is missing; the message names the path and
    the command that prepares it."""


class DataError(SdaanetError, ValueError):
    """A file exists but is unusable (corrupt, truncated, wrong size, unknown label values)."""


class PrepareError(SdaanetError):
    """A problem with a dataset tree found by ``sdaanet-data``."""


class CheckpointError(SdaanetError, ValueError):
    """A checkpoint that cannot be used: missing, unreadable, or of another architecture."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint holds another architecture than the configured network."""


class WeightsError(SdaanetError, RuntimeError):
    """A backbone checkpoint that cannot be provided (unknown name, offline, bad file)."""


class PredictInputError(SdaanetError, ValueError):
    """An input `predict` cannot use: missing, unreadable, mis-sized or empty, or a bad option."""


class NonFiniteLossError(SdaanetError, RuntimeError):
    """A loss term became NaN or infinite during training."""


# `module.Type: ` or `Type: ` at the start of a line, as a traceback's last line has it
_TYPE_PREFIX = re.compile(r"(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*): ")


def _is_exception_name(name: str) -> bool:
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return True
    return name[:1].isupper() and name.endswith(("Error", "Exception", "Warning"))


def one_line(exc: BaseException) -> str:
    """A user-facing line for ``exc``: the last line of its message, without a leading exception
    type (``ValueError: ``, ``module.DataError: ``, as errors re-raised from DataLoader workers
    carry the worker's traceback). Any other prefix, such as a file name, is kept."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    last = lines[-1]
    match = _TYPE_PREFIX.match(last)
    if match and _is_exception_name(match.group(1)):
        return last[match.end() :]
    return last
