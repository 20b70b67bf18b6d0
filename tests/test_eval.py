"""The evaluation protocol: seeds, label modes, original-size scoring, multi-scale, outputs."""

import csv
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra.errors import MissingConfigException
from torch import nn

from sdaanet import compose_config, evaluation
from sdaanet.build import build_datamodule
from sdaanet.eval import main as eval_main
from sdaanet.eval import run as run_eval
from sdaanet.lit import FewShotSegmentationModule
from sdaanet.metrics import ClassMIoU, FBIoU
from sdaanet.protocols import apply_protocol
from sdaanet.records import output_dir_of, summarise
from sdaanet.train import run as run_train


class FixedNet(nn.Module):
    """Logits that mark the left half of the input as foreground (for hand-computed scores)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def learnable_parameters(self):
        return iter([self.w])

    def forward(self, query, images, masks, query_mask=None):
        b, _, h, w = query.shape
        logits = torch.zeros(b, 2, h, w)
        logits[:, 1, :, : w // 2] = 1.0
        return logits


def module(**kw):
    return FewShotSegmentationModule(FixedNet(), n_test_classes=2, **kw)


def raw_batch(raw: torch.Tensor, valid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A 1-episode 32x32 batch whose original-size label `raw` shows as the top-left `valid`
    region of the input."""
    return {
        "query_image": torch.zeros(1, 3, 32, 32),
        "support_images": torch.zeros(1, 1, 3, 32, 32),
        "support_masks": torch.zeros(1, 1, 32, 32, dtype=torch.int64),
        "query_mask": torch.zeros(1, 32, 32, dtype=torch.int64),
        "class_index": torch.tensor([1]),
        "raw_query_mask": raw,
        "raw_size": torch.tensor([list(raw.shape[-2:])]),
        "raw_valid": torch.tensor([list(valid)]),
    }


def test_original_size_scoring_uses_the_image_region_only():
    # a 10x20 image shown as 10x20 in the top-left of a 32x32 input (val_paper at 20 would scale
    # it; here raw_valid says where it is): the prediction's region is resized to 10x20
    m = module(scoring="original")
    raw = torch.full((1, 10, 20), 255)
    raw[0, :, :5] = 1  # fg: columns 0-4
    raw[0, :, 5:] = 0
    batch = raw_batch(raw, (10, 20))
    m._evaluate(batch, m.test_miou, m.test_fbiou)
    # predicted fg = columns 0-15 of the 32-wide input, i.e. columns 0-15 of the 20-wide region:
    # fg I = 5*10, U = 16*10; bg I = 4*10, U = 15*10
    assert m.test_miou.per_class()[1].item() == pytest.approx(5 / 16)
    assert m.test_fbiou.compute().item() == pytest.approx((5 / 16 + 4 / 15) / 2)
    with pytest.raises(ValueError, match="return_raw_label"):
        m._evaluate(
            {k: v for k, v in batch.items() if not k.startswith("raw")}, m.val_miou, m.val_fbiou
        )


def test_multiscale_sums_softmax_of_each_scale_at_the_input_size():
    torch.manual_seed(0)
    net = nn.Conv2d(3, 2, 3, padding=1)

    class Wrapped(FixedNet):
        def forward(self, query, images, masks, query_mask=None):
            return net(query) + images.mean() + masks.float().mean()

    m = FewShotSegmentationModule(Wrapped(), 2, multiscale=[17, 33])
    batch = {
        "query_image": torch.randn(2, 3, 33, 33),
        "support_images": torch.randn(2, 1, 3, 33, 33),
        "support_masks": (torch.rand(2, 1, 33, 33) > 0.5).long(),
    }
    scores = m.predict(batch)
    assert scores.shape == (2, 2, 33, 33)
    full = m.net(batch["query_image"], batch["support_images"], batch["support_masks"])
    q = torch.nn.functional.interpolate(batch["query_image"], (17, 17), mode="bilinear",
                                        align_corners=True)  # fmt: skip
    s = torch.nn.functional.interpolate(batch["support_images"][:, 0], (17, 17), mode="bilinear",
                                        align_corners=True)[:, None]  # fmt: skip
    k = torch.nn.functional.interpolate(batch["support_masks"].float(), (17, 17), mode="nearest")
    small = torch.nn.functional.interpolate(
        m.net(q, s, k.long()), (33, 33), mode="bilinear", align_corners=True
    )
    expected = full.softmax(1) + small.softmax(1)
    torch.testing.assert_close(scores, expected)
    assert torch.allclose(scores.sum(1), torch.full((2, 33, 33), 2.0))


def test_summary_mean_and_sample_std():
    runs = [
        {"class_miou": 0.5, "fbiou": 0.6, "per_class_iou": [0.4, 0.6]},
        {"class_miou": 0.7, "fbiou": 0.6, "per_class_iou": [0.6, 0.8]},
    ]
    s = summarise(runs)
    assert s["class_miou"]["mean"] == pytest.approx(0.6)
    assert s["class_miou"]["std"] == pytest.approx(0.1414213562)  # sqrt(0.02 / 1)
    assert s["fbiou"]["std"] == 0 and s["per_class_iou"][1]["mean"] == pytest.approx(0.7)


def test_a_class_a_seed_never_drew_is_averaged_over_the_seeds_that_drew_it():
    nan = float("nan")  # ClassMIoU.per_class: NaN for a class no episode of the seed drew
    runs = [
        {"class_miou": 0.5, "fbiou": 0.6, "per_class_iou": [0.4, nan, 0.2, nan]},
        {"class_miou": 0.7, "fbiou": 0.6, "per_class_iou": [0.6, 0.8, nan, nan]},
        {"class_miou": 0.6, "fbiou": 0.6, "per_class_iou": [0.5, 0.6, nan, nan]},
    ]
    c0, c1, c2, c3 = summarise(runs)["per_class_iou"]
    assert (c0["mean"], c0["std"], c0["best"]) == pytest.approx((0.5, 0.1, 0.6))
    # drawn by seeds 2 and 3: mean 0.7, sample std sqrt(0.02 / 1), best 0.8
    assert (c1["mean"], c1["std"], c1["best"]) == pytest.approx((0.7, 0.1414213562, 0.8))
    assert (c2["mean"], c2["std"], c2["best"]) == pytest.approx((0.2, 0.0, 0.2))  # one seed
    assert all(math.isnan(c3[k]) for k in ("mean", "std", "best"))  # drawn by no seed


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    miou, fb = ClassMIoU(3), FBIoU()
    preds, target, cls = _episodes()
    miou.update(preds[rank::2], target[rank::2], cls[rank::2])
    fb.update(preds[rank::2], target[rank::2])
    values = [miou.compute().item(), fb.compute().item(), *miou.per_class().tolist()]
    if rank == 0:
        torch.save(values, out)
    dist.destroy_process_group()


def _episodes():
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 2, (7, 6, 6), generator=g)
    target = torch.randint(0, 2, (7, 6, 6), generator=g)
    target[:, 0] = 255
    cls = torch.tensor([0, 1, 0, 1, 0, 1, 0])  # class 2 never drawn
    return preds, target, cls


def test_metrics_synced_over_two_gloo_processes_equal_one_process(tmp_path):
    preds, target, cls = _episodes()
    miou, fb = ClassMIoU(3), FBIoU()
    miou.update(preds, target, cls)
    fb.update(preds, target)
    single = [miou.compute().item(), fb.compute().item(), *miou.per_class().tolist()]
    out = tmp_path / "ddp.pt"
    port = 29500 + os.getpid() % 1000
    mp.start_processes(_ddp_worker, args=(port, str(out)), nprocs=2, start_method="spawn")
    synced = torch.load(out)
    assert synced[:4] == pytest.approx(single[:4]) and synced[4] != synced[4]  # NaN: undrawn


def _eval_cfg(tmp_path, ckpt, *overrides):
    return compose_config(
        ["debug=tiny", f"paths.output_dir={tmp_path}", f"ckpt_path={ckpt}", *overrides],
        config_name="eval",
    )


def test_eval_over_seeds_writes_json_and_csv_next_to_the_checkpoint(tmp_path, tiny_ckpt):
    metrics = run_eval(_eval_cfg(tmp_path / "a", tiny_ckpt, "eval.seeds=[1,2,3]"))
    out = output_dir_of(tiny_ckpt)
    assert out == tiny_ckpt.parent.parent / "eval"
    json_file = out / "last-synthetic-fold0-1shot-data-6ep-seeds1-3-65px.json"  # the protocol
    record = json.loads(json_file.read_text())
    assert [r["seed"] for r in record["seeds"]] == [1, 2, 3]
    p = record["protocol"]
    assert (p["dataset"], p["fold"], p["shot"], p["episodes"], p["input_size"]) == (
        "synthetic",
        0,
        1,
        6,
        65,
    )
    assert p["scored_on"] == "transformed label" and p["checkpoint_selected_on"] == "last"
    assert len(record["classes"]) == 5 and len(record["seeds"][0]["per_class_iou"]) == 5
    mean = sum(r["class_miou"] for r in record["seeds"]) / 3
    assert metrics["test/class_miou"] == pytest.approx(mean)
    rows = list(csv.reader(open(json_file.with_suffix(".csv"))))
    assert rows[0][:3] == ["seed", "class_miou", "fbiou"] and rows[0][3] == record["classes"][0]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "mean", "std"]
    # each seed draws other episodes (an untrained net may still score them alike)
    plans = []
    for seed in (1, 2):
        dm = build_datamodule(_eval_cfg(tmp_path, tiny_ckpt, f"data.val_seed={seed}"), "test")
        dm.setup("test")
        plans.append([dm.val_set.plan(k).supports for k in range(6)])
    assert plans[0] != plans[1]


def test_one_sdaanet_eval_reads_the_checkpoint_once_and_builds_one_datamodule(
    tmp_path, tiny_ckpt, monkeypatch
):
    reads, load = [], torch.load
    datamodules, build = [], evaluation.build_datamodule

    def counted(f, *args, **kwargs):
        reads.append(Path(f))
        return load(f, *args, **kwargs)

    def built(*args, **kwargs):
        datamodules.append(build(*args, **kwargs))
        return datamodules[-1]

    monkeypatch.setattr(torch, "load", counted)
    monkeypatch.setattr(evaluation, "build_datamodule", built)
    argv = [f"ckpt_path={tiny_ckpt}", "eval.seeds=[1,2]", f"paths.output_dir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", ["sdaanet-eval", *argv])
    eval_main()  # the precheck, then the evaluation over two seeds
    assert len(json.loads((tmp_path / "metrics.json").read_text())["seeds"]) == 2
    assert [p for p in reads if p.suffix == ".ckpt"] == [tiny_ckpt]
    assert len(datamodules) == 1 and datamodules[0].val_seed == 2  # re-seeded for each seed


def test_eval_is_repeatable_and_independent_of_workers(tmp_path, tiny_ckpt):
    a = run_eval(_eval_cfg(tmp_path / "a", tiny_ckpt, "eval.seeds=[5,6]", "data.num_workers=0"))
    b = run_eval(_eval_cfg(tmp_path / "b", tiny_ckpt, "eval.seeds=[5,6]", "data.num_workers=0"))
    c = run_eval(_eval_cfg(tmp_path / "c", tiny_ckpt, "eval.seeds=[5,6]", "data.num_workers=2"))
    assert a == b == c


def _left_foreground(self, batch):
    """A prediction known by hand: foreground in the left 160 of the input's columns."""
    q = batch["query_image"]
    scores = torch.zeros(q.shape[0], 2, *q.shape[-2:])
    scores[:, 1, :, :160] = 1.0
    return scores


def test_paper_label_mode_scores_at_the_original_size(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.setattr(FewShotSegmentationModule, "predict", _left_foreground)
    cfg = _eval_cfg(tmp_path, tiny_ckpt, "eval.seeds=[1]", "label_mode=paper")
    run_eval(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    p = record["protocol"]
    assert p["val_transform"] == "val_paper" and p["input_size"] == 321
    assert p["scored_on"] == "original label size"
    # The synthetic queries are 128x128 and fill the whole 321x321 input; resized back
    # (bilinear, align_corners) column x of the 128 reads input column 320x/127, foreground
    # (logit 1 > 0) while that is < 160: x <= 63, the left half of the original label.
    episodes = _eval_cfg(tmp_path / "episodes", tiny_ckpt, "label_mode=paper", "data.val_seed=1")
    episodes, _ = apply_protocol(episodes)
    dm = build_datamodule(episodes, "test")
    dm.setup("test")
    inter, union = torch.zeros(5, 2), torch.zeros(5, 2)  # per class, [background, foreground]
    drawn = set()
    for batch in dm.test_dataloader():
        assert batch["raw_size"].tolist() == [[128, 128]] * 2
        assert batch["raw_valid"].tolist() == [[321, 321]] * 2
        assert batch["query_mask"].shape[-2:] == (321, 321)
        for label, c in zip(batch["raw_query_mask"], batch["class_index"].tolist(), strict=True):
            pred = torch.zeros(128, 128, dtype=torch.bool)
            pred[:, :64] = True
            valid = label != 255
            for k, (p_k, t_k) in enumerate(((~pred, label == 0), (pred, label == 1))):
                inter[c, k] += (p_k & t_k & valid).sum()
                union[c, k] += ((p_k | t_k) & valid).sum()
            drawn.add(c)
    assert drawn == set(range(5))  # every novel class is queried at least once
    score = record["seeds"][0]
    iou = inter[:, 1] / union[:, 1]
    assert score["per_class_iou"] == pytest.approx(iou.tolist())
    assert score["class_miou"] == pytest.approx(iou.mean().item())
    fb = inter.sum(0) / union.sum(0)
    assert score["fbiou"] == pytest.approx(fb.mean().item())
    with pytest.raises(MissingConfigException, match="Could not find 'label_mode/nope'"):
        _eval_cfg(tmp_path, tiny_ckpt, "label_mode=nope")


def test_checkpoints_selected_on_base_classes_say_so_in_the_protocol(tmp_path):
    train = compose_config(
        ["debug=tiny", f"paths.output_dir={tmp_path / 't'}", "data.selection=base"]
    )
    metrics = run_train(train)
    assert 0 <= metrics["val/class_miou"] <= 1
    best = next((tmp_path / "t" / "checkpoints").glob("best-*.ckpt"))
    assert torch.load(best, weights_only=False)["hyper_parameters"]["selection"] == "base"
    run_eval(_eval_cfg(tmp_path / "e", best, "eval.seeds=[1]"))
    record = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert record["protocol"]["checkpoint_selected_on"] == "base"
    assert len(record["classes"]) == 5  # tested on the novel classes
