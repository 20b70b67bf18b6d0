"""A short CPU run prints no Lightning adverts and none of the expected-noise warnings, while a
warning that matters (a module left in eval mode outside the backbone) still shows."""

import logging
import warnings

import pytest

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
