"""sdaanet.errors and sdaanet.cli: one error hierarchy, one line per error, exit status 2."""

from __future__ import annotations

import pytest

from sdaanet.cli import EXIT_ERROR, entry_point
from sdaanet.errors import (
    CheckpointError,
    CheckpointMismatchError,
    ConfigError,
    DataConfigError,
    DataError,
    DataNotFoundError,
    NonFiniteLossError,
    PredictInputError,
    PrepareError,
    SdaanetError,
    WeightsError,
    one_line,
)


@pytest.mark.parametrize(
    ("kind", "builtin"),
    [
        (ConfigError, ValueError),
        (DataConfigError, ConfigError),
        (DataNotFoundError, FileNotFoundError),
        (DataError, ValueError),
        (PrepareError, Exception),
        (CheckpointError, ValueError),
        (CheckpointMismatchError, CheckpointError),
        (WeightsError, RuntimeError),
        (PredictInputError, ValueError),
        (NonFiniteLossError, RuntimeError),
    ],
)
def test_every_kind_is_an_sdaanet_error_and_keeps_its_builtin(kind, builtin):
    assert issubclass(kind, SdaanetError) and issubclass(kind, builtin)


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ("logs/x/last.ckpt: checkpoint does not match", None),
        ("last.ckpt: checkpoint does not match", None),
        ("data/mine/classes.tsv:2: class id 0 must be in 1-254", None),
        ("note: keep this", None),
        ("Traceback (most recent call last):\n  File 'x.py'\nsdaanet.errors.DataError: bad a.jpg",
         "bad a.jpg"),
        ("ValueError: bad value", "bad value"),
        ("PIL.Image.DecompressionBombError: too big", "too big"),
        ("first line\n\n  last line  \n", "last line"),
    ],
)  # fmt: skip
def test_one_line_strips_only_an_exception_type_prefix(message, line):
    assert one_line(ValueError(message)) == (message if line is None else line)


def test_one_line_of_an_empty_message_is_the_type():
    assert one_line(KeyError()) == "KeyError"


def test_entry_point_prints_one_line_and_exits_2(capsys):
    @entry_point
    def main(argv: list[str]) -> int:
        raise DataError(f"cannot read image {argv[0]}: corrupt")

    with pytest.raises(SystemExit) as exit_:
        main(["a.jpg"])
    assert exit_.value.code == EXIT_ERROR == 2
    assert capsys.readouterr().err == "error: cannot read image a.jpg: corrupt\n"


def test_entry_point_passes_results_and_other_errors_through():
    assert entry_point(lambda: 0)() == 0
    with pytest.raises(KeyError):
        entry_point(lambda: {}["x"])()
