"""A short CPU run prints no Lightning adverts and none of the expected-noise warnings, while a
warning that matters (a module left in eval mode outside the backbone) still shows. Piped (not a
terminal), training and evaluation print plain progress lines every N steps, no ANSI codes and no
W&B setting warnings."""

import json
import logging
import os
import re
import subprocess
import sys
import warnings

import pytest
from omegaconf import OmegaConf

from sdaanet import compose_config
from sdaanet.train import run

NOISE = ("Tip:", "in eval mode at the start", "LeafSpec", "pin_memory", "KLDiv", "reduction")


def tiny_run(tmp_path, *overrides):
    cfg = compose_config(
        ["debug=tiny", "logger=csv", f"paths.output_dir={tmp_path}", "backbone.freeze_bn=true",
         "data.train_episodes=2", "+trainer.limit_val_batches=1", *overrides]
    )  # fmt: skip
    return cfg


def test_a_short_run_prints_no_noise(tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tiny_run(tmp_path))
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    out = capsys.readouterr()
    messages += (out.out + out.err).splitlines()
    noisy = [m for m in messages if any(n in m for n in NOISE)]
    assert not noisy, noisy
    assert any("RANDOM weights" in m for m in messages)  # a warning that matters stays


def test_a_module_left_in_eval_mode_outside_the_backbone_is_still_reported(tmp_path):
    from sdaanet.lit import FewShotSegmentationModule

    original = FewShotSegmentationModule.on_train_start

    def freeze_down_query(self):
        self.net.down_query.eval()
        original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FewShotSegmentationModule, "on_train_start", freeze_down_query)
        with pytest.warns(UserWarning, match=r"outside the backbone are in eval mode.*down_query"):
            run(tiny_run(tmp_path))


def _piped(tmp_path, module: str, *overrides: str) -> subprocess.CompletedProcess:
    """`python -m <module> <overrides>` with stdout and stderr to pipes, as `... | tee log`."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("WANDB_SILENT", None)  # conftest silences W&B; here its console is under test
    return subprocess.run(
        [sys.executable, "-m", module, f"hydra.run.dir={tmp_path / 'hydra' / module}", *overrides],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.slow  # two subprocesses: 2 min on a loaded 2-core machine
def test_piped_train_and_eval_print_plain_progress_lines_and_no_wandb_warnings(tmp_path):
    run_dir = tmp_path / "run"  # not made yet when W&B starts, as `make demo`'s run folder
    node = compose_config([f"paths.output_dir={run_dir}"]).logger.wandb  # the default W&B logger
    node = OmegaConf.to_container(node, resolve=True)  # debug=tiny drops it: given back here
    wandb = "{" + ",".join(f"{k}:{json.dumps(v)}" for k, v in node.items()) + "}"
    bar = "{_target_:sdaanet.callbacks.progress_bar,every_n_steps:2}"
    train = _piped(
        tmp_path, "sdaanet.train", "data=synthetic", "debug=tiny", f"paths.output_dir={run_dir}",
        f"logger.wandb={wandb}", f"callbacks.progress_bar={bar}", "test=false",
        "data.train_episodes=10", "trainer.max_epochs=2", "trainer.enable_model_summary=true",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert list(run_dir.glob("wandb/offline-run-*"))  # W&B did run
    evaluation = _piped(
        tmp_path, "sdaanet.eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"paths.output_dir={tmp_path / 'eval'}", f"callbacks.progress_bar={bar}",
        "eval.seeds=[321]", "data.val_episodes=8", "data.val_batch_size=2",
    )  # fmt: skip
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    for out in (train.stdout, train.stderr, evaluation.stdout, evaluation.stderr):
        assert "\x1b[" not in out, out  # no ANSI codes: W&B's footer, Rich's bar and table
        assert "\r" not in out
        assert "anonymous setting" not in out and "git root" not in out
        assert "━" not in out and "┃" not in out  # no Rich bar or table
    # 2 epochs x 5 steps: a line at steps 2, 4, 6, 8, 10 (the last), a validation line per epoch
    steps = re.findall(r"^step (\d+)/10  epoch (\d)  train/loss \d\.\d{4}  \d+\.\d\d s/step$",
                       train.stdout, re.M)  # fmt: skip
    assert steps == [("2", "0"), ("4", "0"), ("6", "1"), ("8", "1"), ("10", "1")]
    assert len(re.findall(r"^validation after epoch \d: val/class_miou [\d.]+  val/fbiou",
                          train.stdout, re.M)) == 2  # fmt: skip
    assert "| Name" in train.stderr  # the model summary (a log line), as a plain table
    # 8 test episodes in batches of 2: lines after batches 2 and 4
    assert re.findall(r"^test batch (\d)/4$", evaluation.stdout, re.M) == ["2", "4"]


def test_progress_lines_every_n_steps_and_at_the_last(tmp_path, capsys):
    cfg = tiny_run(tmp_path, "data.train_episodes=8", "test=false")
    cfg.callbacks.progress_bar = {"_target_": "sdaanet.callbacks.progress_bar", "every_n_steps": 3}
    run(cfg)  # 4 steps: lines at 3 and 4 (the last)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("step ")]
    assert [x.split()[1] for x in lines] == ["3/4", "4/4"], lines
