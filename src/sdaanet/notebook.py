"""Run `notebooks/explore_checkpoint.ipynb` headless on a checkpoint and save it executed:

    python -m sdaanet.notebook --ckpt CKPT --out executed.ipynb [--baseline CKPT]
        [--episodes N] [--device cpu|cuda] [--override KEY=VALUE ...]

The options go into a cell placed after the notebook's `parameters` cell (as papermill does);
the cells run in the current directory, so relative paths in `--override` mean what they say.
The kernel is this interpreter's own ipykernel, whatever kernels are installed, so no `sdaanet`
kernel is needed (docs/notebook.md). A failing cell: one `error:` line naming it, exit status 1,
and the executed notebook up to it in `--out`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdaanet.checkpoint import read_checkpoint
from sdaanet.cli import entry_point
from sdaanet.errors import ConfigError, DataNotFoundError

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_checkpoint.ipynb"
CELL_TIMEOUT_S = 3600


def parameter_cell(params: dict[str, Any]) -> Any:
    """The cell that sets `params`, tagged `injected-parameters` as papermill tags it."""
    import nbformat

    source = "# injected by sdaanet.notebook\n" + "".join(
        f"{name} = {value!r}\n" for name, value in params.items()
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})


def execute(notebook: Path, params: dict[str, Any], out: Path) -> str | None:
    """Execute `notebook` with `params` set after its `parameters` cell, in the current
    directory, on this interpreter's kernel; write the executed notebook to `out` (also when a
    cell fails: the error is in its output). Returns None, or what failed."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if not tagged:
        raise ConfigError(f"{notebook} has no cell tagged `parameters`")
    nb.cells.insert(tagged[0] + 1, parameter_cell(params))
    failed = None
    with tempfile.TemporaryDirectory(prefix="sdaanet-kernel-") as sockets:
        # no kernel directories: `python3` is ipykernel's own spec, i.e. sys.executable; local
        # sockets (no unencrypted TCP) in a folder that goes away with the kernel
        km = KernelManager(
            kernel_name="python3",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[]),
            transport="ipc",
            ip=str(Path(sockets) / "kernel"),
        )
        client = NotebookClient(
            nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(Path.cwd())}}
        )
        try:
            client.execute()
        except CellExecutionError as exc:
            lines = str(exc.evalue).strip().splitlines()
            failed = f"{exc.ename}: {lines[-1]}" if lines else exc.ename
        finally:
            if km.has_kernel:  # a kernel manager passed in is not shut down by the client
                km.shutdown_kernel()
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return failed


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sdaanet.notebook",
        description="Run notebooks/explore_checkpoint.ipynb headless on a checkpoint.",
    )
    p.add_argument("--ckpt", required=True, type=Path, help="the sdaanet checkpoint (CKPT)")
    p.add_argument("--out", required=True, type=Path, help="the executed notebook to write")
    p.add_argument("--baseline", type=Path, default=None, help="a PFENet checkpoint beside it")
    p.add_argument("--episodes", type=int, default=60, help="test episodes (N_EPISODES)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (DEVICE)")
    p.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="a data setting that differs from the checkpoint's (OVERRIDES), repeatable",
    )  # fmt: skip
    return p


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Execute the notebook on `--ckpt`, write `--out`; `error: ...` and 2 on bad input, 1 when
    a cell fails."""
    args = _parser().parse_args(argv)
    for ckpt in (args.ckpt, args.baseline):
        if ckpt is not None:
            read_checkpoint(ckpt, hint="pass an sdaanet .ckpt file")  # before a kernel starts
    if not NOTEBOOK.is_file():
        raise DataNotFoundError(f"{NOTEBOOK} not found: the notebook comes with a source checkout")
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    params = {
        "CKPT": str(args.ckpt.resolve()),
        "BASELINE_CKPT": str(args.baseline.resolve()) if args.baseline else None,
        "OVERRIDES": list(args.override),
        "N_EPISODES": args.episodes,
        "DEVICE": args.device,
    }
    failed = execute(NOTEBOOK, params, args.out)
    if failed:
        print(f"error: a notebook cell failed: {failed} (see {args.out})", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
