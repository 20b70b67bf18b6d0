"""Seeded runs are deterministic on one machine (README): the backbone pre-training and a short
training run (DataLoader workers on, as in the demo), each run twice in separate processes, one of
them beside a CPU-bound load, write byte-identical weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUN = """
import sys, warnings
from pathlib import Path
import torch
from sdaanet import compose_config
from sdaanet.pretrain import pretrain_backbone
from sdaanet.build import build_datamodule
from sdaanet.train import fit

warnings.filterwarnings("ignore", "backbone .* has RANDOM weights")
out = Path(sys.argv[1])
cfg = compose_config([
    "debug=tiny", f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}",
    "data.num_workers=1", "data.train_episodes=8", "trainer.max_epochs=2", "test=false",
])
pretrain_backbone("resnet18", build_datamodule(cfg), out / "pretrained.pth", steps=8,
                  batch_size=4, size=65, output_stride=8)
_, module, _ = fit(cfg)
torch.save(module.net.state_dict(), out / "trained.pth")
"""


def _weights(out: Path) -> dict[str, bytes]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: (out / name).read_bytes() for name in ("pretrained.pth", "trained.pth")}


def test_seeded_runs_write_the_same_weights_on_a_loaded_machine(tmp_path):
    quiet = _weights(tmp_path / "quiet")
    spin = [sys.executable, "-c", "while True: pass"]
    load = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 2)]
    try:
        loaded = _weights(tmp_path / "loaded")
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    assert [name for name, data in quiet.items() if loaded[name] != data] == []
