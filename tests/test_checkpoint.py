"""Checkpoints that describe themselves: the same numbers as before the refactor, evaluation
from the checkpoint alone, the previous format, contradictions, and no code run on load."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from sdaanet import compose_config
from sdaanet.callbacks import RNGState
from sdaanet.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointMismatchError,
    description,
    keep_checkpoint,
    network_from_checkpoint,
    read_checkpoint,
)
from sdaanet.eval import main as eval_main
from sdaanet.eval import run as run_eval
from sdaanet.predict import load_predictor
from sdaanet.train import run as run_train

GOLDEN = Path(__file__).parent / "golden"
# the settings of tests/golden/before_refactor.json, written by the code before this refactor
# (commit a54a0ba^) in fp32: the bf16 fast path's numbers differ between CPUs with and without
# native bf16, fp32's only in the last bits
TRAIN = ["debug=tiny", "logger=csv", "data.num_workers=0", "runtime=plain", "test=false"]
EVAL = ["eval.seeds=[1,2]", "runtime=plain"]


def close(a: object, b: object) -> bool:
    """`a == b` up to fp32 rounding (rel 1e-5) in every number of nested dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-5, abs=1e-7)
    return a == b


pytestmark = pytest.mark.filterwarnings("ignore:backbone .* RANDOM weights")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    metrics = run_train(compose_config([*TRAIN, f"paths.output_dir={out}"]))
    return out / "checkpoints" / "last.ckpt", metrics


def evaluate(tmp: Path, *overrides: str) -> list[dict]:
    """`sdaanet-eval` with exactly `overrides` on its command line; the per-seed records."""
    argv = [*overrides, f"paths.output_dir={tmp}"]
    run_eval(compose_config(argv, config_name="eval"), argv)
    return json.loads((tmp / "metrics.json").read_text())["seeds"]


def test_training_and_evaluation_numbers_are_those_before_the_refactor(trained, tmp_path):
    ckpt, metrics = trained
    before = json.loads((GOLDEN / "before_refactor.json").read_text())
    assert close({k: metrics[k] for k in before["train"]}, before["train"])
    assert close(evaluate(tmp_path, "debug=tiny", f"ckpt_path={ckpt}", *EVAL), before["seeds"])


def test_eval_with_only_the_checkpoint_evaluates_it_as_trained(trained, tmp_path, capsys):
    ckpt, _ = trained
    before = json.loads((GOLDEN / "before_refactor.json").read_text())
    assert close(evaluate(tmp_path / "a", f"ckpt_path={ckpt}", *EVAL), before["seeds"])
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        f"from checkpoint {ckpt}: network SDAANet(backbone=resnet18, reduce_dim=16, sdpm, saam), "
        "1-shot; data SyntheticDataModule fold 0 as trained"
    )
    # a data override on the command line wins, and the line says so
    seeds = evaluate(tmp_path / "b", f"ckpt_path={ckpt}", "eval.seeds=[1]", "data.val_episodes=4")
    record = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert record["protocol"]["episodes"] == 4 and len(seeds) == 1
    assert "as trained except data.val_episodes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.reduce_dim=32", r"model\.reduce_dim=32 contradicts checkpoint .*, which holds 16"),
        ("backbone=resnet50", r"backbone\.name=resnet50 contradicts .*, which holds resnet18"),
        ("model=pfenet", r"(backbone|model)\.\S+=\S+ contradicts checkpoint .*, which holds"),
        ("shot=5", r"was trained 1-shot but shot=5 is configured"),
    ],
)  # fmt: skip
def test_an_override_contradicting_the_stored_network_names_both_values(
    trained, tmp_path, override, message
):
    ckpt, _ = trained
    with pytest.raises(CheckpointMismatchError, match=message):
        evaluate(tmp_path, f"ckpt_path={ckpt}", override)


def test_a_checkpoint_of_the_previous_format_keeps_loading(trained, tmp_path):
    ckpt, _ = trained
    c = read_checkpoint(ckpt)
    new = c["hyper_parameters"]["description"]
    c["hyper_parameters"] = json.loads((GOLDEN / "format1_hparams.json").read_text())
    old = tmp_path / "format1.ckpt"
    torch.save(c, old)
    info = description(read_checkpoint(old), old)
    assert info["format"] == 1 and info["data"] is None and info["input_size"] == 65
    assert info["network"] == new["network"]
    before = json.loads((GOLDEN / "before_refactor.json").read_text())
    assert close(evaluate(tmp_path / "e", "debug=tiny", f"ckpt_path={old}", *EVAL), before["seeds"])


def test_a_checkpoint_recording_the_decoder_bins_with_its_data_evaluates(trained, tmp_path):
    """A checkpoint written while the bins were a data key records them with its data settings
    too; evaluated from the checkpoint alone it gives the same numbers."""
    ckpt, _ = trained
    c = read_checkpoint(ckpt)
    recorded = c["hyper_parameters"]["description"]
    recorded["data"]["ppm_scales"] = list(recorded["network"]["ppm_scales"])
    old = tmp_path / "bins_in_data.ckpt"
    torch.save(c, old)
    assert "ppm_scales" not in description(read_checkpoint(old), old)["data"]
    before = json.loads((GOLDEN / "before_refactor.json").read_text())
    assert close(evaluate(tmp_path / "e", f"ckpt_path={old}", *EVAL), before["seeds"])


class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(trained, tmp_path, capsys):
    ckpt, _ = trained
    marker = tmp_path / "ran"
    bad = tmp_path / "colleague.ckpt"
    c = read_checkpoint(ckpt)
    c["payload"] = Payload(marker)
    torch.save(c, bad)
    refused = r"refused to load .*colleague\.ckpt: it holds pickled Python objects"
    with pytest.raises(CheckpointError, match=refused):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError, match=refused):
        load_predictor(bad)
    with pytest.raises(CheckpointError, match=refused):  # resuming a training run
        AtomicCheckpointIO().load_checkpoint(bad)
    argv = ["sdaanet-eval", f"ckpt_path={bad}", f"paths.log_dir={tmp_path / 'logs'}"]
    with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
        eval_main()
    err = capsys.readouterr().err.splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("error: refused")
    assert not marker.exists()
    torch.load(bad, weights_only=False)  # the payload is real: full unpickling runs it
    assert marker.exists()


def test_a_network_node_naming_other_code_is_refused(trained, tmp_path):
    ckpt, _ = trained
    c = read_checkpoint(ckpt)
    c["hyper_parameters"]["description"]["network"]["_target_"] = "os.system"
    bad = tmp_path / "target.ckpt"
    torch.save(c, bad)
    with pytest.raises(
        CheckpointError, match=r"names _target_ 'os.system', which is not a network"
    ):
        network_from_checkpoint(bad)


@pytest.mark.parametrize("where", ["argument", "list", "deep"])
def test_a_nested_target_is_refused_before_anything_is_built(trained, tmp_path, capsys, where):
    ckpt, _ = trained
    marker = tmp_path / "created"  # built, `builtins.open(marker, "w")` would create it
    opener = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    c = read_checkpoint(ckpt)
    network = c["hyper_parameters"]["description"]["network"]
    if where == "argument":  # a module argument that is itself a node
        network["dropout"] = opener
    elif where == "list":
        network["ppm_scales"] = [*network["ppm_scales"], opener]
    else:  # in a list in a dict in the backbone's node
        network["backbone"]["options"] = {"layers": [1, {"file": opener}]}
    bad = tmp_path / "nested.ckpt"
    torch.save(c, bad)
    refused = r"nested\.ckpt names _target_ 'builtins.open', which is not a network"
    with pytest.raises(CheckpointError, match=refused) as exc:
        network_from_checkpoint(bad)
    assert "\n" not in str(exc.value) and not marker.exists()
    argv = ["sdaanet-eval", f"ckpt_path={bad}", f"paths.output_dir={tmp_path / 'eval'}"]
    with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
        eval_main()
    err = capsys.readouterr().err.splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("error: checkpoint")
    assert not marker.exists()


def test_a_kept_reading_is_handed_over_once_and_only_for_the_unchanged_file(tmp_path):
    path = tmp_path / "a.ckpt"
    torch.save({"x": torch.zeros(1)}, path)
    kept = read_checkpoint(path)
    keep_checkpoint(path, kept)
    assert read_checkpoint(path) is not kept  # only a reading that asks for it
    assert read_checkpoint(path, reuse=True) is kept
    assert read_checkpoint(path, reuse=True) is not kept  # handed over once
    keep_checkpoint(path, kept)
    torch.save({"x": torch.ones(2)}, path)  # the file changed: read again
    assert read_checkpoint(path, reuse=True)["x"].tolist() == [1.0, 1.0]


def test_an_evaluation_without_ckpt_path_is_one_line_saying_how(tmp_path, capsys):
    not_set = "ckpt_path is not set; run: sdaanet-eval ckpt_path=<file>.ckpt"
    cfg = compose_config([f"paths.output_dir={tmp_path}"], config_name="eval")
    with pytest.raises(CheckpointError) as exc:
        run_eval(cfg)
    assert str(exc.value) == not_set
    argv = ["sdaanet-eval", f"paths.output_dir={tmp_path}"]
    with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
        eval_main()  # refused by the precheck, with the same words
    err = capsys.readouterr().err.splitlines()
    assert exit_info.value.code == 2 and err == [f"error: {not_set}"]


def test_rng_states_are_saved_and_restored_by_the_callback():
    checkpoint: dict = {}
    torch.manual_seed(5)
    RNGState().on_save_checkpoint(SimpleNamespace(training=False), None, checkpoint)
    assert checkpoint["rng_states"]["mid_epoch"] is False
    expected = torch.rand(3)
    torch.manual_seed(6)
    RNGState().on_load_checkpoint(None, None, checkpoint)
    assert torch.equal(torch.rand(3), expected)


# A checkpoint written before issue 24's refactor (commit 8f5ca95, debug=tiny): the file as
# sdaanet-train wrote it, less its optimiser state, its weights left out to keep it small and
# filled in here from their names (`seeded_state`); its records are those that commit's
# sdaanet-eval wrote (less the time and paths).
WRITTEN_BEFORE = GOLDEN / "checkpoint_format2.ckpt"
RECORDS_BEFORE = json.loads((GOLDEN / "checkpoint_format2.json").read_text())


@pytest.fixture(scope="module")
def written_before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.golden import seeded_state

    from sdaanet.checkpoint import build_network

    c = read_checkpoint(WRITTEN_BEFORE)
    net = build_network(c["hyper_parameters"]["description"]["network"])
    c["state_dict"] = {f"net.{k}": v for k, v in seeded_state(net).items()}
    path = tmp_path_factory.mktemp("before") / "tiny.ckpt"
    torch.save(c, path)
    return path


@pytest.mark.parametrize(
    "case",
    [
        "as_trained",
        pytest.param("label_mode_paper", marks=pytest.mark.slow),
        pytest.param("protocol_hsnet", marks=pytest.mark.slow),
    ],
)
def test_a_checkpoint_written_before_the_refactor_evaluates_to_its_numbers(
    written_before, tmp_path, case
):
    expected = RECORDS_BEFORE[case]
    argv = [f"ckpt_path={written_before}", *expected["overrides"]]
    run_eval(compose_config([*argv, f"paths.output_dir={tmp_path}"], config_name="eval"), argv)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record.pop("checkpoint") == str(written_before)
    assert record.pop("run_dir") == str(tmp_path) and record.pop("evaluated_at")
    assert close(record, expected["record"])  # == on this machine; fp32's last bits vary by CPU
