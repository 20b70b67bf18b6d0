"""Every training run ends evaluated, and no record or log replaces another."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

from sdaanet import compose_config
from sdaanet.checkpoint import describe, resolve_checkpoint
from sdaanet.errors import CheckpointError
from sdaanet.eval import run as run_eval
from sdaanet.records import record_name
from sdaanet.train import run as run_train

TINY = ["debug=tiny", "eval.seeds=[1,2]"]


def _train(out: Path, *overrides: str) -> dict[str, float]:
    cfg = compose_config(
        [*TINY, f"paths.output_dir={out}", f"paths.data_dir={out.parent / 'data'}", *overrides]
    )
    return run_train(cfg)


def _eval(out: Path, ckpt: Path | str, *overrides: str) -> dict[str, float]:
    cfg = compose_config(
        [*TINY, f"paths.output_dir={out}", f"ckpt_path={ckpt}", *overrides], config_name="eval"
    )
    return run_eval(cfg)


READS: list[Path] = []  # the files `trained`'s run read with torch.load


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """One tiny run with the default `test=true`: its directory and returned metrics."""
    out = tmp_path_factory.mktemp("records") / "run"
    load = torch.load

    def counted(f, *args, **kwargs):
        READS.append(Path(f))
        return load(f, *args, **kwargs)

    with mock.patch.object(torch, "load", counted):
        return out, _train(out)


def test_the_end_of_run_evaluation_reads_its_checkpoint_once(trained):
    out, _ = trained
    (best,) = (out / "checkpoints").glob("best-*.ckpt")
    assert [p for p in READS if p.suffix == ".ckpt"] == [best]


def test_a_training_run_ends_with_the_record_of_its_best_checkpoint(trained):
    out, metrics = trained
    (best,) = (out / "checkpoints").glob("best-*.ckpt")
    record = json.loads((out / "metrics.json").read_text())
    assert record["checkpoint"] == str(best)
    assert record["protocol"]["checkpoint_selected_on"] == "novel"
    assert [s["seed"] for s in record["seeds"]] == [1, 2]
    state = torch.load(best, weights_only=True)["callbacks"]
    (score,) = [s["best_model_score"] for k, s in state.items() if "val/class_miou" in k]
    assert record["validation"]["class_miou"] == pytest.approx(float(score))
    assert metrics["test/class_miou"] == pytest.approx(record["summary"]["class_miou"]["mean"])
    # the same record beside the run, under a name that states the protocol
    name = f"{best.stem}-synthetic-fold0-1shot-data-6ep-seeds1-2-65px"
    assert record_name(record) == name
    assert json.loads((out / "eval" / f"{name}.json").read_text()) == record
    assert (out / "eval" / f"{name}.csv").read_text().startswith("seed,class_miou,fbiou,")


def test_each_seed_logs_into_its_own_folder_and_training_logs_stay(trained):
    out, _ = trained
    for seed in (1, 2):
        rows = (out / "csv" / f"test-seed{seed}" / "metrics.csv").read_text().splitlines()
        assert rows[0].startswith("epoch") and "test/class_miou" in rows[0] and len(rows) == 2
    train_log = (out / "csv" / "metrics.csv").read_text()
    assert "train/loss" in train_log.splitlines()[0]


def test_a_finished_run_directory_is_skipped(trained, capsys):
    out, metrics = trained
    last = out / "checkpoints" / "last.ckpt"
    before = (last.stat().st_mtime_ns, last.read_bytes())
    again = _train(out)
    assert f"skipped: {out} holds its evaluation record" in capsys.readouterr().out
    assert (last.stat().st_mtime_ns, last.read_bytes()) == before  # no training step ran
    assert again["test/class_miou"] == metrics["test/class_miou"]


def test_a_cut_run_continues_from_its_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out, "test=false")  # one epoch, then "killed" before its evaluation
    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    _train(out, "trainer.max_epochs=2")
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 2 * first)
    assert (out / "metrics.json").is_file()


def test_a_plumbing_only_run_says_so_in_its_checkpoint_records_and_printout(
    trained, tmp_path, capsys
):
    """debug=tiny sets plumbing_only: the checkpoint keeps it, so every evaluation of it (even
    one that sets plumbing_only=false) records and prints it; a run without it records false."""
    out, _ = trained
    assert json.loads((out / "metrics.json").read_text())["plumbing_only"] is True
    capsys.readouterr()
    quick = ["eval.seeds=[1]", "data.val_episodes=2", "plumbing_only=false"]
    (tiny := tmp_path / "tiny").mkdir()  # a copy: records go beside it, not into the shared run
    shutil.copy(out / "checkpoints" / "last.ckpt", tiny / "last.ckpt")
    _eval(tmp_path / "e", tiny / "last.ckpt", *quick)
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["plumbing_only"] is True
    header = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("synthetic"))
    assert header.endswith("; plumbing-only run: not a result (plumbing_only=true)")
    # the same network from a run that is not plumbing-only (as `describe` stores it)
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    description = checkpoint["hyper_parameters"]["description"]
    assert description["plumbing_only"] is True
    assert describe(compose_config(["plumbing_only=false"]))["plumbing_only"] is False
    description["plumbing_only"] = False
    (real := tmp_path / "real").mkdir()
    torch.save(checkpoint, real / "last.ckpt")
    _eval(tmp_path / "r", real / "last.ckpt", *quick)
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["plumbing_only"] is False
    assert "not a result" not in capsys.readouterr().out


def test_last_checkpoint_records_no_selection(tmp_path):
    out = tmp_path / "run"
    _train(out, "test_ckpt=last")
    record = json.loads((out / "metrics.json").read_text())
    assert record["checkpoint"] == str(out / "checkpoints" / "last.ckpt")
    assert record["protocol"]["checkpoint_selected_on"] == "last"
    assert record["validation"] is None


def test_records_of_other_protocols_and_repeats_never_replace_each_other(trained, tmp_path):
    run_dir, _ = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    _eval(tmp_path / "a", ckpt, "data.val_episodes=4")
    _eval(tmp_path / "b", ckpt, "data.val_episodes=4")
    _eval(tmp_path / "c", ckpt, "data.val_episodes=2", "eval.seeds=[7]")
    names = sorted(p.name for p in (run_dir / "eval").glob("last-*.json"))
    assert names == [
        "last-synthetic-fold0-1shot-data-2ep-seeds7-65px.json",
        "last-synthetic-fold0-1shot-data-4ep-seeds1-2-65px-2.json",
        "last-synthetic-fold0-1shot-data-4ep-seeds1-2-65px.json",
    ]
    for d in "ab":  # each evaluation's seeds log apart
        assert sorted(p.name for p in (tmp_path / d / "csv").iterdir()) == ["seed1", "seed2"]


def test_eval_of_a_run_directory_takes_its_selected_checkpoint(trained, tmp_path):
    run_dir, _ = trained
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    assert resolve_checkpoint(run_dir) == best
    _eval(tmp_path / "e", run_dir)
    record = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert record["checkpoint"] == str(best)
    # the configuration: the training run's overrides, the evaluation's winning
    assert record["configuration"]["overrides"] == []  # in-process runs have no command line
    with pytest.raises(CheckpointError, match="no checkpoint in .*checkpoints"):
        resolve_checkpoint(tmp_path)


def test_two_runs_started_in_the_same_second_get_their_own_directories():
    code = (
        "from hydra import compose, initialize_config_dir\n"
        "from sdaanet.config import CONF_DIR, register_resolvers\n"
        "register_resolvers()\n"
        "with initialize_config_dir(config_dir=str(CONF_DIR), version_base='1.3'):\n"
        "    cfg = compose('train', return_hydra_config=True)\n"
        "print(cfg.hydra.run.dir)\n"
    )
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    dirs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert dirs[0] != dirs[1]
    assert [d.rsplit("_", 1)[1] for d in dirs] == [str(p.pid) for p in procs]


def test_resume_false_trains_again_and_keeps_the_first_metrics_json(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out)
    last = out / "checkpoints" / "last.ckpt"
    first = (out / "metrics.json").read_bytes()
    stamp = last.stat().st_mtime_ns
    _train(out, "resume=false")
    assert "skipped:" not in capsys.readouterr().out
    assert last.stat().st_mtime_ns != stamp  # trained again
    assert (out / "metrics.json").read_bytes() == first  # never overwritten
    again = json.loads((out / "metrics-2.json").read_text())
    assert again["evaluated_at"] != json.loads(first)["evaluated_at"]


def test_an_evaluation_run_again_is_skipped_and_resume_false_adds_a_record(trained, tmp_path):
    run_dir, _ = trained
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"  # a copy: its eval/ is this test's
    ckpt.parent.mkdir(parents=True)
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", ckpt)
    out = tmp_path / "e"
    metrics = _eval(out, ckpt)
    first = (out / "metrics.json").read_bytes()
    records = sorted(p.name for p in (tmp_path / "run" / "eval").iterdir())
    assert _eval(out, ckpt) == metrics  # skipped: the record's numbers, nothing evaluated
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".json") == ["metrics.json"]
    assert sorted(p.name for p in (tmp_path / "run" / "eval").iterdir()) == records
    _eval(out, ckpt, "resume=false")
    assert (out / "metrics.json").read_bytes() == first
    assert (out / "metrics-2.json").is_file()


def test_the_evaluation_overrides_win_over_the_checkpoint_configuration(trained, tmp_path):
    run_dir, _ = trained
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    stored = {"experiment": "demo", "overrides": ["data.val_episodes=3", "model.alpha=5"]}
    checkpoint["hyper_parameters"]["description"]["configuration"] = stored
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    cfg = compose_config(
        [*TINY, f"paths.output_dir={tmp_path / 'e'}", f"ckpt_path={ckpt}", "data.val_episodes=4"],
        config_name="eval",
    )
    run_eval(cfg, [f"ckpt_path={ckpt}", "data.val_episodes=4"])  # as on the command line
    record = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert record["protocol"]["episodes"] == 4
    assert record["configuration"] == {
        "experiment": "demo",
        "overrides": ["data.val_episodes=4", "model.alpha=5"],
    }
