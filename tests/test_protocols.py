"""Other codebases' test protocols as presets (`eval/protocol=...`), and test-time K-shot."""

import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from sdaanet import compose_config
from sdaanet.config import CONF_DIR
from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from sdaanet.errors import CheckpointMismatchError, ConfigError
from sdaanet.eval import run as run_eval
from sdaanet.models.inference import ShotVoting, vote
from sdaanet.protocols import apply_protocol
from test_eval import module, raw_batch

PRESETS = ["sdaanet_code", "paper", "pfenet", "hsnet", "bam", "hdmnet"]
# (episodes, side, resize, scoring, 255 left out, number of seeds, aggregate), read off
# docs/protocols.md (../shared/reference/protocols.md) by hand
PASCAL = {
    "sdaanet_code": (1001, 473, "val", "transformed", True, 1, "mean"),
    "paper": (1000, 321, "val_paper", "original", True, 5, "mean"),
    "pfenet": (5001, 473, "val_floor8", "original_padded", True, 1, "mean"),
    "hsnet": (1000, 400, "val", "transformed", True, 1, "mean"),
    "bam": (1000, 473, "val_floor8", "original_padded", True, 5, "best_and_mean"),
    "hdmnet": (1000, 473, "val", "original", True, 10, "best_and_mean"),
}
COCO = {
    "sdaanet_code": (4001, 473, True),
    "paper": (4000, 321, True),
    "pfenet": (20001, 641, True),
    "hsnet": (1000, 400, False),
    "bam": (1000, 641, True),
    "hdmnet": (10000, 633, True),
}


def _applied(dataset: str, preset: str):
    cfg = compose_config(["debug=tiny", f"data={dataset}", f"eval/protocol={preset}"], "eval")
    return apply_protocol(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_sets_its_codebase_rules_per_dataset(preset):
    cfg, p = _applied("pascal", preset)
    episodes, side, resize, scoring, ignore, n_seeds, aggregate = PASCAL[preset]
    d = cfg.data
    assert (d.val_episodes, d.val_size, d.val_transform) == (episodes, side, resize)
    assert d.return_raw_label == (scoring != "transformed")
    assert (p.scoring, p.ignore_boundary, len(p.seeds), p.aggregate) == (
        scoring, ignore, n_seeds, aggregate,
    )  # fmt: skip
    assert p.preset == preset and p.matches and p.differs
    cfg, p = _applied("coco", preset)
    assert (cfg.data.val_episodes, cfg.data.val_size, p.ignore_boundary) == COCO[preset]
    # a dataset the preset does not list keeps the data config's episodes
    cfg, p = _applied("synthetic", preset)
    assert cfg.data.val_episodes == 6


def test_bam_and_hdmnet_use_their_seed_lists():
    assert _applied("pascal", "bam")[1].seeds == [510, 365, 382, 322, 988]
    assert _applied("pascal", "hdmnet")[1].seeds == [510, 365, 382, 322, 988, 98, 742, 17, 595,
                                                     106]  # fmt: skip
    assert _applied("pascal", "hsnet")[1].seeds == [0]


def test_without_a_preset_the_label_mode_decides():
    cfg = compose_config(["debug=tiny", "data=pascal", "label_mode=paper"], "eval")
    cfg, p = apply_protocol(cfg)
    assert p.preset is None and p.label_mode == "paper" and p.scoring == "original"
    assert (cfg.data.val_size, cfg.data.val_transform) == (321, "val_paper")


# data.val_* and the protocol of every dataset x label mode x preset (with and without data
# overrides), as the code before issue 24's refactor (8f5ca95) resolved them from the composed
# configs; here the label mode and preset nodes are set on one composed config per dataset
BEFORE = json.loads((Path(__file__).parent / "golden" / "test_settings_before.json").read_text())
CONF = Path(CONF_DIR)


@pytest.mark.parametrize("extra", [(), ("data.val_size=97", "data.val_episodes=3")])
def test_every_label_mode_and_preset_resolves_the_test_settings_as_before(extra):
    modes = {p.stem: OmegaConf.load(p) for p in (CONF / "label_mode").glob("*.yaml")}
    presets = {p.stem: OmegaConf.load(p) for p in (CONF / "eval" / "protocol").glob("*.yaml")}
    datasets = sorted({key.split()[0] for key in BEFORE})
    assert len(datasets) * len(modes) * (len(presets) + 1) * 2 == len(BEFORE)
    for data in datasets:
        base = compose_config([data, *extra], config_name="eval")
        for (mode, node), preset in itertools.product(modes.items(), [None, *presets]):
            cfg = copy.deepcopy(base)
            with open_dict(cfg):
                cfg.label_mode = node
                cfg.eval.protocol = presets.get(preset)
            settled, p = apply_protocol(cfg)
            d = settled.data
            got = [d.val_episodes, d.val_size, d.val_transform, d.return_raw_label, p.preset,
                   p.label_mode, p.scoring, p.ignore_boundary, p.seeds, p.aggregate]  # fmt: skip
            key = " ".join([data, f"label_mode={mode}", *extra])
            key += f" eval/protocol={preset}" if preset else ""
            assert got == BEFORE[key], key


# ------------------------------------------------------------------ resizing, on a hand-made image
def _transformed(recipe: str, h: int = 100, w: int = 60, side: int = 473):
    image = np.full((h, w, 3), 255, np.uint8)
    label = np.ones((h, w), np.uint8)
    t = build_transform(recipe, side)
    return t, *t(image, label)


def test_pfenet_input_keeps_the_aspect_floors_to_8_and_pads_top_left():
    t, image, label = _transformed("val_floor8")
    # 100x60 -> longer side 473, 60 * 4.73 = 283.8 -> 283; both floored to 8: 472 x 280
    assert t.valid_hw(100, 60) == (472, 280)
    assert (label[:472, :280] == 1).all() and (label[472:] == 255).all()
    assert (label[:, 280:] == 255).all()
    zero = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)  # raw 0 padding, normalised
    np.testing.assert_allclose(image[:, 472, 0], zero, rtol=1e-5)
    # the authors' val_pad only shrinks: a small image keeps its size; the paper's rounds
    assert build_transform("val_pad", 473).valid_hw(100, 60) == (100, 60)
    assert build_transform("val_paper", 473).valid_hw(100, 60) == (473, 284)


def test_pfenet_truncates_the_shorter_side_before_flooring_to_8():
    # H x W (rows x columns) = 500 x 304 at 473: H -> 473, floored to 472; W = 304 * 473 / 500
    # = 287.584 -> int 287 -> floored to 8: 280 (rounding would give 288, already a multiple)
    t, image, label = _transformed("val_floor8", h=500, w=304)
    assert t.valid_hw(500, 304) == (472, 280)
    assert (label[:472, :280] == 1).all() and (label[472:] == 255).all()
    assert (label[:, 280:] == 255).all()
    assert t.valid_hw(304, 500) == (280, 472)  # W x H = 500 x 304: the same, transposed


def test_hsnet_input_and_label_are_warped_to_400():
    t, image, label = _transformed("val", side=400)
    assert image.shape == (3, 400, 400) and label.shape == (400, 400) and (label == 1).all()


# ------------------------------------------------------------------ which pixels count
def test_pfenet_scores_the_original_label_padded_to_a_square_with_255():
    # FixedNet marks input columns 0-15 of 32 as foreground. The 10x20 label is padded to 20x20
    # (rows 10-19: 255, left out); the whole 32x32 prediction is resized to 20x20
    # (align_corners): column j sits at x = 31j/19, foreground while x < 16, i.e. j <= 9.
    raw = torch.zeros(1, 10, 20, dtype=torch.int64)
    raw[0, :, :5] = 1
    m = module(scoring="original_padded")
    m._evaluate(raw_batch(raw, (10, 20)), m.test_miou, m.test_fbiou)
    # rows 0-9 count: fg I = 5*10, U = 10*10; bg I = 10*10, U = 15*10
    assert m.test_miou.per_class()[1].item() == pytest.approx(0.5)
    assert m.test_fbiou.compute().item() == pytest.approx((0.5 + 100 / 150) / 2)


def test_hsnet_coco_counts_label_255_as_background():
    raw = torch.tensor([[[1, 0], [255, 0]]])
    batch = raw_batch(raw, (2, 2))
    batch["query_mask"] = raw
    batch["query_image"] = torch.zeros(1, 3, 2, 2)  # FixedNet: column 0 foreground
    kept = module(ignore_boundary=True)
    kept._evaluate(batch, kept.test_miou, kept.test_fbiou)
    assert kept.test_miou.per_class()[1].item() == pytest.approx(1.0)  # (1,0) left out: I 1, U 1
    counted = module(ignore_boundary=False)
    counted._evaluate(batch, counted.test_miou, counted.test_fbiou)
    # (1, 0) is background now, predicted foreground: I 1, U 2
    assert counted.test_miou.per_class()[1].item() == pytest.approx(0.5)


# ------------------------------------------------------------------ HSNet's voting, by hand
def test_voting_threshold_is_relative_to_the_largest_vote_in_the_image():
    votes = torch.tensor([
        [[0, 1], [2, 2]],   # peak 2: foreground where v/2 >= 0.5, i.e. v >= 1
        [[0, 0], [0, 0]],   # no vote: max(0, 1) = 1, all background
        [[1, 0], [0, 0]],   # peak 1 (of K = 5): the single vote wins
        [[5, 2], [3, 1]],   # peak 5: v >= 2.5
    ])  # fmt: skip
    assert vote(votes).tolist() == [
        [[0, 1], [1, 1]],
        [[0, 0], [0, 0]],
        [[1, 0], [0, 0]],
        [[1, 0], [1, 0]],
    ]


def test_shot_voting_runs_the_network_once_per_support():
    calls = []

    def net(query, images, masks):  # foreground exactly where this support's mask is
        calls.append(images.shape[1])
        fg = masks[:, 0].float()
        return torch.stack([1 - fg, fg], 1)

    masks = torch.zeros(1, 3, 2, 2, dtype=torch.int64)
    masks[0, 0] = torch.tensor([[1, 1], [0, 0]])
    masks[0, 1] = torch.tensor([[1, 0], [0, 0]])
    masks[0, 2] = torch.tensor([[1, 0], [1, 0]])
    scores = ShotVoting(net)(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 3, 2, 2), masks)
    assert calls == [1, 1, 1]
    # votes [[3, 1], [1, 0]]: peak 3, foreground where v >= 1.5: only the top-left pixel
    assert scores.argmax(1).tolist() == [[[1, 0], [0, 0]]]


# ------------------------------------------------------------------ end to end on a checkpoint
def _eval(tmp_path, ckpt, *overrides):
    argv = [f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path}", *overrides]
    run_eval(compose_config(argv, config_name="eval"), argv)
    return json.loads((tmp_path / "metrics.json").read_text())


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_on_a_checkpoint_and_is_recorded(preset, tiny_ckpt, tmp_path, capsys):
    seeds = "[1,2]" if preset in ("bam", "hdmnet") else "[1]"
    record = _eval(tmp_path, tiny_ckpt, f"eval/protocol={preset}", f"eval.protocol.seeds={seeds}",
                   "data.val_episodes=4")  # fmt: skip
    p = record["protocol"]
    assert p["preset"] == preset and p["label_mode"] == f"preset {preset}"
    assert math.isfinite(record["summary"]["class_miou"]["mean"])
    out = capsys.readouterr().out
    assert f"protocol {preset}: " in out and "not matched: " in out
    assert ("best         class-mIoU" in out) == (preset in ("bam", "hdmnet"))
    # a preset with a `default` side moves the synthetic checkpoint (trained at 65 px) off its
    # size and says so; the others keep the size and say nothing
    size = {"hsnet": 400, "paper": 321, "sdaanet_code": 473}.get(preset, 65)
    assert p["input_size"] == size
    moved = f"  {preset}: evaluating at {size} px; the checkpoint was trained at 65 px\n"
    assert (moved in out) == (size != 65)
    assert ("the checkpoint was trained at" in out) == (size != 65)
    name = next((tiny_ckpt.parent.parent / "eval").glob(f"last-*-preset-{preset}-*.json"))
    assert json.loads(name.read_text())["protocol"]["preset"] == preset


class SupportMaskNet(torch.nn.Module):
    """Foreground where the first support's mask is: its scores follow the supports a seed draws
    (the tiny checkpoint's barely trained network scores every seed alike)."""

    def forward(self, query, images, masks, query_mask=None):
        fg = torch.nn.functional.interpolate((masks[:, :1] == 1).float(), query.shape[-2:])
        return torch.cat([1 - fg, fg], 1)


@pytest.mark.parametrize("preset", ["bam", "hdmnet"])
def test_best_is_the_maximum_over_the_seeds_in_the_record(preset, tiny_ckpt, tmp_path, capsys,
                                                           monkeypatch):  # fmt: skip
    import sdaanet.evaluation

    real = sdaanet.evaluation.network_from_checkpoint
    monkeypatch.setattr(
        sdaanet.evaluation, "network_from_checkpoint", lambda *a: (SupportMaskNet(), real(*a)[1])
    )
    record = _eval(tmp_path, tiny_ckpt, f"eval/protocol={preset}", "eval.protocol.seeds=[1,2,3]",
                   "data.val_episodes=4")  # fmt: skip
    s, seeds = record["summary"], record["seeds"]
    for metric in ("class_miou", "fbiou"):
        values = [r[metric] for r in seeds]
        assert len(set(values)) == 3  # the seeds differ: max, mean and the last one tell apart
        assert s[metric]["best"] == max(values)
    for c, stats in enumerate(s["per_class_iou"]):
        drawn = [r["per_class_iou"][c] for r in seeds if math.isfinite(r["per_class_iou"][c])]
        assert stats["best"] == max(drawn) if drawn else math.isnan(stats["best"])
    best = f"best         class-mIoU {s['class_miou']['best']:.4f}"
    assert f"{best}          FB-IoU {s['fbiou']['best']:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("kshot", ["fusion", "voting"])
def test_a_1_shot_checkpoint_at_5_shots_by_each_k_shot_choice(kshot, tiny_ckpt, tmp_path):
    record = _eval(tmp_path, tiny_ckpt, "shot=5", f"eval.kshot={kshot}", "eval.seeds=[1]",
                   "data.val_episodes=4")  # fmt: skip
    p = record["protocol"]
    assert (p["shot"], p["trained_shot"], p["kshot"]) == (5, 1, kshot)
    assert all(math.isfinite(s["class_miou"]) for s in record["seeds"])


def test_k_shot_without_a_choice_is_refused_and_names_it(tiny_ckpt, tmp_path):
    with pytest.raises(CheckpointMismatchError, match=r"or eval\.kshot=fusion\|voting"):
        _eval(tmp_path, tiny_ckpt, "shot=5")
    with pytest.raises(ConfigError, match=r"pass shot=K with K > 1"):
        _eval(tmp_path, tiny_ckpt, "eval.kshot=voting")


# ------------------------------------------------------------------ presets in the report
def test_the_report_never_puts_two_presets_in_one_column_unmarked(tmp_path):
    from sdaanet.reporting.collect import load_records
    from sdaanet.reporting.rows import build_table
    from test_report import record, write

    def preset_record(fold, preset, experiment, in_overrides=True):
        named = (f"eval/protocol={preset}",) if in_overrides else ()
        rec = record(fold, [0.5], overrides=named, experiment=experiment)
        rec["protocol"].update(preset=preset, label_mode=f"preset {preset}")
        return rec

    for fold in (0, 1):  # two rows, one preset each: each row names its own protocol
        write(tmp_path / "a" / "eval" / f"pfenet{fold}.json", preset_record(fold, "pfenet", "x"))
        write(tmp_path / "a" / "eval" / f"hsnet{fold}.json", preset_record(fold, "hsnet", "x"))
    table = build_table(load_records([tmp_path / "a"]))
    assert len(table.protocols) == 2
    assert sorted(r.protocols[0] for r in table.rows) == ["P1", "P2"]
    assert {p.settings["preset"] for p in table.protocols} == {"pfenet", "hsnet"}
    # one row whose folds were scored under two presets: marked, and no mean
    write(tmp_path / "b" / "eval" / "f0.json", preset_record(0, "pfenet", "y", in_overrides=False))
    write(tmp_path / "b" / "eval" / "f1.json", preset_record(1, "bam", "y", in_overrides=False))
    (row,) = build_table(load_records([tmp_path / "b"])).rows
    assert row.mean is None and any("preset bam (fold 1) vs pfenet" in n for n in row.notes)


# ------------------------------------------------------------------ batched evaluation
@pytest.mark.parametrize("mode", ["label_mode=data", "label_mode=paper", "eval/protocol=pfenet"])
def test_batched_evaluation_equals_batch_1_in_fp32(mode, tiny_ckpt, tmp_path):
    runs = [
        _eval(
            tmp_path / str(b),
            tiny_ckpt,
            mode,
            f"data.val_batch_size={b}",
            "runtime=plain",
            "eval.seeds=[3]",
            "eval.protocol.seeds=[3]" if "protocol" in mode else "shot=1",
            "data.val_episodes=6",
        )  # fmt: skip
        for b in (1, 4)
    ]
    assert runs[0]["seeds"] == runs[1]["seeds"]
