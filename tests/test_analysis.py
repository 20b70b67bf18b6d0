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
    cosine_map,
    episode_iou,
    format_per_class,
    miou_by_object_size,
    per_class_table,
    show_episodes,
    size_bin_edges,
    support_similarity,
    tsne,
    worst_episodes,
)
from sdaanet.build import build_datamodule
from sdaanet.metrics import episode_counts
from sdaanet.models.layers import resize
from sdaanet.viz import (
    fig_attention,
    fig_failures,
    fig_qualitative,
    fig_similarity,
    fig_size_bins,
    fig_tsne,
)

matplotlib.use("Agg")
TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [1.0, 0.5]}


def records(sizes, inter, union, class_index) -> Records:
    n = len(sizes)
    return Records(
        np.arange(n), np.asarray(class_index) + 1, np.asarray(class_index), np.asarray(sizes),
        np.asarray(inter), np.asarray(union), np.zeros((n, 4)), None, n_classes=3,
    )  # fmt: skip


def test_size_bin_edges_follow_the_paper_scaled_to_a_smaller_input():
    paper = [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000]
    assert size_bin_edges(321) == paper  # Fig. 9 on the paper's 321x321 input
    assert size_bin_edges(473) == paper  # a larger input keeps the paper's sizes
    # 65x65: areas times 65^2 / 321^2 = 4225 / 103041; 500 px -> 20.50 -> 21, 5000 -> 205.01
    edges = size_bin_edges(65)
    assert len(edges) == 11 and edges[:3] == [0, 21, 41] and edges[-1] == 205


def test_miou_by_object_size_bins_by_hand():
    r = records(
        sizes=[100, 499, 500, 900, 6000], inter=[1, 3, 2, 6, 50], union=[4, 4, 4, 8, 100],
        class_index=[0, 1, 0, 0, 2],
    )  # fmt: skip
    bins = miou_by_object_size(r, size_bin_edges(321))
    assert [b["bin"] for b in bins][:2] == ["0-500", "500-1000"] and bins[-1]["bin"] == "4500-5000"
    assert len(bins) == 10  # ten 500-pixel bins up to 5000; the 6000-px object is left out
    # bin 0-500: class 0 -> 1/4, class 1 -> 3/4 -> mean 0.5
    assert bins[0]["episodes"] == 2 and bins[0]["miou"] == pytest.approx(0.5)
    # bin 500-1000: class 0 only, (2 + 6) / (4 + 8)
    assert bins[1]["episodes"] == 2 and bins[1]["miou"] == pytest.approx(8 / 12)
    assert np.isnan(bins[2]["miou"]) and bins[2]["episodes"] == 0
    assert sum(b["episodes"] for b in bins) == 4
    # all episodes: class 0 (1+2+6)/(4+4+8), class 1 3/4, class 2 1/2
    assert class_miou(r) == pytest.approx((9 / 16 + 3 / 4 + 1 / 2) / 3)
    # scaled bins of a 65-px input: [0, 21), [21, 41), ...
    tiny = records([20, 21, 40, 205], [1] * 4, [2] * 4, [0] * 4)
    counts = [b["episodes"] for b in miou_by_object_size(tiny, size_bin_edges(65))]
    assert counts[:3] == [1, 2, 0] and sum(counts) == 3  # 205 px is not below the last edge


def test_worst_episodes_by_hand():
    # IoUs 1/4, 0, 3/4, undefined (empty union), 0
    r = records(sizes=[5] * 5, inter=[1, 0, 3, 0, 0], union=[4, 5, 4, 0, 2], class_index=[0] * 5)
    r.episode = np.array([10, 11, 12, 13, 14])
    iou = episode_iou(r)
    assert iou[[0, 1, 2, 4]].tolist() == [0.25, 0, 0.75, 0] and np.isnan(iou[3])
    assert worst_episodes(r, 2).tolist() == [11, 14]  # the tie at 0 in episode order
    assert worst_episodes(r, 3).tolist() == [11, 14, 10]
    assert worst_episodes(r, 10).tolist() == [11, 14, 10, 12]  # the undefined one is skipped


def test_per_class_table_names_every_class_and_says_not_drawn():
    # 3 test classes (ids 7, 8, 9); the episodes draw classes 0 and 1 only
    target = torch.tensor([[[1, 0]], [[1, 1]], [[0, 1]]])
    pred = torch.tensor([[[1, 1]], [[1, 0]], [[0, 1]]])
    class_index = torch.tensor([0, 1, 0])
    inter, union = episode_counts(pred, target)
    r = Records(
        np.arange(3), class_index.numpy() + 7, class_index.numpy(), np.array([1, 2, 1]),
        inter[:, 1].numpy(), union[:, 1].numpy(), np.zeros((3, 4)), None, n_classes=3,
        batches=[(pred, target, class_index)],
    )  # fmt: skip
    names = {7: "cow", 8: "sheep", 9: "horse"}
    table = per_class_table(r, names, [7, 8, 9])
    assert [row["class"] for row in table] == ["cow", "sheep", "horse", "class-mIoU"]
    assert [row["episodes"] for row in table] == [2, 1, 0, 3]
    # cow: (1 + 1) / (2 + 1); sheep: 1 / 2; horse never drawn
    assert table[0]["iou"] == pytest.approx(2 / 3) and table[1]["iou"] == pytest.approx(0.5)
    assert np.isnan(table[2]["iou"]) and table[3]["iou"] == pytest.approx((2 / 3 + 0.5) / 2)
    text = format_per_class({"baseline": table, "SD-AANet": table})
    lines = text.splitlines()
    assert lines[0].split() == ["class", "episodes", "baseline", "SD-AANet"]
    assert lines[3].split() == ["horse", "0", "not", "drawn", "not", "drawn"]
    assert lines[1].split() == ["cow", "2", "0.667", "0.667"]
    assert lines[-1].split()[0] == "FB-IoU" and "nan" not in text
    with pytest.raises(ValueError, match="2 classes given, the records have 3"):
        per_class_table(r, names, [7, 8])


def test_cosine_map_by_hand():
    # 2x2 features with 2 channels: (1,0) (0,1) / (1,1) (0,0); prototype (1,0), then (3,4)
    features = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])[None]
    sim = cosine_map(features, torch.tensor([[1.0, 0.0]]))
    assert sim.shape == (1, 2, 2)
    assert torch.allclose(sim[0], torch.tensor([[1.0, 0.0], [2**-0.5, 0.0]]))
    sim = cosine_map(features, torch.tensor([[3.0, 4.0]]))  # |p| = 5
    assert torch.allclose(sim[0], torch.tensor([[0.6, 0.8], [7 / 5 * 2**-0.5, 0.0]]))


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
    table = per_class_table(r, dm.class_names, dm.split_classes("test"))
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
    assert len(fig_size_bins(miou_by_object_size(r, size_bin_edges(65))).axes) == 1
    maps = {"baseline": torch.rand(3, 65, 65), "SD-AANet": torch.rand(3, 65, 65)}
    assert len(fig_similarity(r.shown, maps, n=2).axes) == 2 * 4
    assert len(fig_failures(r.shown[:2]).axes) == 2 * 5
    with pytest.raises(ValueError, match="t-SNE needs at least 3 episodes"):
        tsne(r.prototype[:2])
    other = [*r.shown[1:], r.shown[0]]
    with pytest.raises(ValueError, match="shows episode"):
        fig_qualitative({"a": r.shown, "b": other})


def test_show_episodes_reruns_the_chosen_episodes(collected):
    net, dm, r = collected
    shown = show_episodes(net, dm.test_dataloader().dataset, [2, 0], dm.n_test_classes)
    assert [ep.episode for ep in shown] == [2, 0]
    for ep, kept in zip(shown, [r.shown[2], r.shown[0]], strict=True):
        assert torch.equal(ep.pred, kept.pred) and torch.equal(ep.target, kept.target)
        assert torch.allclose(ep.attention, kept.attention)


@pytest.mark.parametrize("model", [{"sdpm": False, "saam": False}, {}], ids=["pfenet", "sdaanet"])
def test_support_similarity_is_the_cosine_of_the_networks_own_prototype(collected, model):
    _, _, r = collected
    net = build({**TINY, **model}).eval()
    episodes = r.shown[:2]
    support = torch.stack([ep.support_image for ep in episodes])
    mask = torch.stack([ep.support_mask for ep in episodes])
    query = torch.stack([ep.query for ep in episodes])
    args = query, support[:, None], mask[:, None]
    before = net.trace(*args)
    sim = support_similarity(net, episodes)
    assert sim.shape == (2, 65, 65) and not net.down_supp._forward_hooks
    assert torch.equal(net.trace(*args).logits, before.logits)  # the hooks are gone
    # by hand: the support features F_s and, 1-shot, the network's own prototype(s)
    with torch.no_grad():
        s = net.down_supp(net.backbone.mid(support)[1])
        p = before.prototype
        if net.sdpm is not None:  # Eq. 3: F~_s = F_s * a', p'_s = a' * p_s
            factor = (net.sdpm.se_supp(p[:, :, None, None]) + 1) / 2
            s, p = s * factor, before.sdpm_prototype
            assert torch.allclose(p, (factor * before.prototype[:, :, None, None]).flatten(1))
    flat = s.flatten(2)
    cos = (flat * p[:, :, None]).sum(1) / (flat.norm(dim=1) * p.norm(dim=1, keepdim=True))
    expected = resize(cos.reshape(2, 1, *s.shape[-2:]), (65, 65))[:, 0]
    assert torch.allclose(sim, expected, atol=1e-5)
