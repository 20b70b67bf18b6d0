"""The wheel path: `pip install .` gives a package that runs from any directory (its configs ship
inside it), writing its logs under the current directory."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


TOP_LEVEL_SKIP = {".venv", ".git", "logs", "data", "build", "dist", "wandb", "multirun", "outputs"}


def _skip(folder: str, names: list[str]) -> list[str]:
    """What the copy leaves out: the checkout's environment and outputs, and build leftovers."""
    top = Path(folder) == REPO
    leftovers = ("__pycache__", ".egg-info", "_cache")
    return [n for n in names if (top and n in TOP_LEVEL_SKIP) or n.endswith(leftovers)]


@pytest.mark.slow  # 20-45 s on a 2-core AVX2 machine
def test_wheel_installs_and_trains_from_another_directory(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPO, source, ignore=_skip)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-q", "-w", str(tmp_path / "dist"), str(source))  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("sdaanet-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "sdaanet/conf/train.yaml" in names and "sdaanet/conf/model/sdaanet.yaml" in names
    # a fresh venv that sees this environment's dependencies but not the editable checkout
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run(str(venv / "bin" / "python"), "-c", purelib).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(wheel))  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SDAANET_ROOT")}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline")
    where = run(str(venv / "bin" / "python"), "-c", "import sdaanet; print(sdaanet.__file__)",
                cwd=work, env=env)  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    trained = run(str(venv / "bin" / "sdaanet-train"), "debug=tiny", "logger=csv",
                  "data.num_workers=0", cwd=work, env=env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert list((work / "logs" / "tiny" / "runs").glob("*/checkpoints/last.ckpt"))
