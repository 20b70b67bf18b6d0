"""Running a command's `main` in-process."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def exit_code(main: Callable[[Sequence[str]], int | None], argv: Sequence[str]) -> int:
    """The status `main(argv)` returns, or exits with (`sdaanet.cli` exits 2 on a bad input)."""
    try:
        return main([str(a) for a in argv]) or 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
