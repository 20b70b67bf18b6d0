"""The notebook's analyses (sdaanet.analysis) and figures (sdaanet.viz): numbers by hand, panels."""

import matplotlib
import numpy as np
import pytest
import torch
from tests.helpers.networks import build

from sdaanet import compose_config
from sdaanet.analysis import (
    Records,
    class_miou,
    collect,
    miou_by_object_size,
    per_class_table,
    tsne,
)
from sdaanet.train import build_datamodule
from sdaanet.viz import fig_attention, fig_qualitative, fig_size_bins, fig_tsne

matplotlib.use("Agg")
TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [1.0, 0.5]}


def records(sizes, inter, union, class_index) -> Records:
    n = len(sizes)
    return Records(
        np.arange(n), np.asarray(class_index) + 1, np.asarray(class_index), np.asarray(sizes),
        np.asarray(inter), np.asarray(union), np.zeros((n, 4)), None, n_classes=3,
    )  # fmt: skip


def test_miou_by_object_size_bins_by_hand():
    r = records(
        sizes=[100, 499, 500, 900, 6000], inter=[1, 3, 2, 6, 50], union=[4, 4, 4, 8, 100],
        class_index=[0, 1, 0, 0, 2],
    )  # fmt: skip
    bins = miou_by_object_size(r)
    assert [b["bin"] for b in bins][:2] == ["0-500", "500-1000"] and bins[-1]["bin"] == ">=5000"
    assert len(bins) == 11  # ten 500-pixel bins up to 5000, then the larger objects
    # bin 0-500: class 0 -> 1/4, class 1 -> 3/4 -> mean 0.5
    assert bins[0]["episodes"] == 2 and bins[0]["miou"] == pytest.approx(0.5)
    # bin 500-1000: class 0 only, (2 + 6) / (4 + 8)
    assert bins[1]["episodes"] == 2 and bins[1]["miou"] == pytest.approx(8 / 12)
    assert np.isnan(bins[2]["miou"]) and bins[2]["episodes"] == 0
    assert bins[-1]["miou"] == pytest.approx(0.5)
    # all episodes: class 0 (1+2+6)/(4+4+8), class 1 3/4, class 2 1/2
    assert class_miou(r) == pytest.approx((9 / 16 + 3 / 4 + 1 / 2) / 3)


@pytest.fixture(scope="module")
def collected():
    torch.manual_seed(0)
    net = build(TINY).eval()
    cfg = compose_config(["debug=tiny", "data.val_episodes=6", "data.val_batch_size=4"])
    dm = build_datamodule(cfg, stage="test")
    dm.setup("test")
    return net, dm, collect(net, dm.test_dataloader(), dm.n_test_classes, max_episodes=5, show=3)


def test_collect_keeps_every_episode_and_matches_the_network(collected):
    net, dm, r = collected
    assert (
        len(r.episode) == 5 and r.prototype.shape == (5, 16) and r.sdpm_prototype.shape == (5, 16)
    )
    assert len(r.shown) == 3 and r.shown[0].attention.shape == r.shown[0].query.shape[-2:]
    batch = next(iter(dm.test_dataloader()))
    args = batch["query_image"], batch["support_images"], batch["support_masks"]
    with torch.no_grad():
        logits, prior = net(*args), net.prior(*args)
    trace = net.trace(*args)
    assert torch.equal(trace.logits, logits) and torch.allclose(trace.prior, prior)
    pred, target = logits.argmax(1), batch["query_mask"]
    assert r.object_size[:4].tolist() == (target == 1).flatten(1).sum(1).tolist()
    fg_p = (pred == 1) & (target != 255)
    assert r.inter[:4].tolist() == (fg_p & (target == 1)).flatten(1).sum(1).tolist()
    assert torch.equal(r.shown[0].pred, pred[0])
    table = per_class_table(r, dm.class_names)
    assert table[-1]["class"] == "class-mIoU" and table[-1]["episodes"] == 5
    assert table[-1]["iou"] == pytest.approx(class_miou(r))
    assert sum(row["episodes"] for row in table[:-1]) == 5


def test_figures_have_one_panel_per_image(collected):
    _, dm, r = collected
    fig = fig_qualitative({"baseline": r.shown, "SD-AANet": r.shown}, n=2)
    assert len(fig.axes) == 2 * 5  # support, query, truth, two predictions
    assert len(fig_qualitative({"SD-AANet": r.shown}, n=3).axes) == 3 * 4
    assert len(fig_attention(r.shown, n=2).axes) == 2 * 3
    xy = tsne(r.prototype, perplexity=2)
    assert xy.shape == (5, 2) and np.isfinite(xy).all()
    fig = fig_tsne({"raw": xy, "SDPM": tsne(r.sdpm_prototype)}, r.class_id, dm.class_names)
    assert len(fig.axes) == 2
    assert len(fig_size_bins(miou_by_object_size(r)).axes) == 1
    with pytest.raises(ValueError, match="t-SNE needs at least 3 episodes"):
        tsne(r.prototype[:2])
    other = [*r.shown[1:], r.shown[0]]
    with pytest.raises(ValueError, match="shows episode"):
        fig_qualitative({"a": r.shown, "b": other})
