"""Test-wide environment: no network calls, no W&B sync, dataset caches in a temp folder; the
tiny checkpoint that the prediction, evaluation and bad-input tests share; the MSRC-v2 photos."""

import os
import tempfile
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("SDAANET_CACHE", tempfile.mkdtemp(prefix="sdaanet-cache-"))

# real labelled photos (research use only: read in place, never copied into the repository)
MSRC_ROOT = Path(
    os.environ.get("SDAANET_MSRC", Path(__file__).resolve().parents[2] / "shared/data/msrc-v2")
)


@pytest.fixture(scope="session")
def msrc_root() -> Path:
    """The MSRC-v2 tree (images/, labels/, classes.tsv); the test is skipped where it is absent."""
    if not (MSRC_ROOT / "classes.tsv").is_file():
        pytest.skip(f"MSRC-v2 not found at {MSRC_ROOT} (set SDAANET_MSRC)")
    return MSRC_ROOT


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-shot tiny checkpoint (conf/debug/tiny.yaml, synthetic data): one training step, no
    validation. Read it, never write it: copy it to change it."""
    from sdaanet import compose_config
    from sdaanet.train import fit

    out = tmp_path_factory.mktemp("tiny-train")
    overrides = [f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}",
                 "data.train_episodes=2", "+trainer.limit_val_batches=0",
                 "callbacks.model_checkpoint=null"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "backbone .* has RANDOM weights")
        fit(compose_config(["debug=tiny", *overrides]))
    return out / "checkpoints" / "last.ckpt"
