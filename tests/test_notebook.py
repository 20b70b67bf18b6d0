"""The headless notebook command (docs/notebook.md): `python -m sdaanet.notebook --ckpt CKPT --out
executed.ipynb` runs notebooks/explore_checkpoint.ipynb on CKPT with this interpreter's kernel,
with no kernel installed in the user's home."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The documented command in a subprocess, from `tmp_path`, with an empty home (no user
    kernels) and no JUPYTER_PATH."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "sdaanet.notebook", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)


@pytest.mark.slow  # ~30 s on 2 AVX2 cores; the failing-cell test runs the command fast
def test_the_headless_command_runs_every_cell_on_the_given_checkpoint(tiny_ckpt, tmp_path):
    out = tmp_path / "nb" / "executed.ipynb"
    done = _run(tmp_path, "--ckpt", str(tiny_ckpt), "--out", str(out), "--episodes", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {out}\n" and done.stderr == ""
    nb = nbformat.read(out, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = tags.index(["parameters"])
    assert tags[at + 1] == ["injected-parameters"]
    assert f"CKPT = {str(tiny_ckpt)!r}\n" in nb.cells[at + 1].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)  # every cell ran
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    # the given checkpoint, not the tiny ones the notebook trains when CKPT is None
    assert f"from checkpoint {tiny_ckpt}: " in text and "4 episodes: synthetic, fold 0" in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 6  # Fig. 7, 10, 8, 9, 11, 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "nb"]  # nothing else written


def test_a_failing_cell_is_one_error_line_and_the_notebook_is_kept(tiny_ckpt, tmp_path):
    out = tmp_path / "executed.ipynb"
    args = ["--ckpt", str(tiny_ckpt), "--out", str(out), "--episodes", "4"]
    done = _run(tmp_path, *args, "--override", "data.fold=9")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert (
        done.stderr.startswith("error: a notebook cell failed: ") and f"(see {out})" in done.stderr
    )
    errors = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]  # fmt: skip
    assert len(errors) == 1
