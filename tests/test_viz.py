"""Figure layout (sdaanet.viz): the demo grid's header and the notebook figures' titles."""

import itertools
from dataclasses import replace

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sdaanet.analysis import EpisodeShow
from sdaanet.viz import (
    GRID_TITLES,
    denormalize,
    fig_attention,
    fig_failures,
    fig_similarity,
    heatmap,
    save_grid,
)

matplotlib.use("Agg")
PURPLE = (128, 0, 128)


def disjoint(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """(left, top, right, bottom) boxes that share no pixel."""
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("side", [40, 65, 97])
def test_grid_header_titles_do_not_overlap(tmp_path, monkeypatch, side):
    drawn = []
    original = ImageDraw.ImageDraw.multiline_text

    def record(self, xy, text, *args, **kwargs):
        drawn.append((xy, text, self.multiline_textbbox(xy, text)))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "multiline_text", record)
    panel = np.full((side, side, 3), PURPLE, np.uint8)
    path = save_grid([[panel] * 4] * 2, tmp_path / "grid.png")
    assert [" ".join(text.split()) for _, text, _ in drawn] == list(GRID_TITLES)
    boxes = [box for _, _, box in drawn]
    assert all(disjoint(a, b) for a, b in itertools.combinations(boxes, 2))
    image = np.asarray(Image.open(path).convert("RGB"))
    panels = (image == PURPLE).all(-1)
    rows, cols = np.nonzero(panels)
    top = rows.min()
    assert max(b[3] for b in boxes) < top  # every title ends above the panels
    # each title starts at its own panel and ends before the next panel begins
    starts = np.array([x for x in range(1, image.shape[1]) if panels[top, x] > panels[top, x - 1]])
    assert len(starts) == 4 and panels.sum() == 8 * side * side
    for c, box in enumerate(boxes):
        assert np.abs(starts - box[0]).argmin() == c and (c == 3 or box[2] < starts[c + 1])
    ink = (image[:top] < 250).any(-1)  # the header holds only the titles' pixels
    ys, xs = np.nonzero(ink)
    inside = np.zeros_like(ink)
    for left, upper, right, lower in boxes:
        inside[upper:lower, left:right] = True
    assert inside[ys, xs].all()


def episode(i: int, side: int = 65) -> EpisodeShow:
    g = torch.Generator().manual_seed(i)
    mask = (torch.rand(side, side, generator=g) > 0.5).long()
    image = torch.randn(3, side, side, generator=g)
    return EpisodeShow(i, 3, image, mask, image, mask, 1 - mask, torch.rand(side, side),
                       torch.rand(side, side))  # fmt: skip


def titles_overlap(fig) -> list[tuple[str, str]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(ax.get_title(), ax.title.get_window_extent(renderer)) for ax in fig.axes]
    return [(a, b) for (a, x), (b, y) in itertools.combinations(boxes, 2) if x.overlaps(y)]


def test_new_figures_panels_and_titles_do_not_overlap():
    eps = [episode(i) for i in range(3)]
    maps = {"baseline": torch.rand(3, 65, 65), "SD-AANet": torch.rand(3, 65, 65)}
    fig = fig_similarity(eps, maps, n=3)
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "support (class 3)", "support mask", "baseline similarity", "SD-AANet similarity"
    ]  # fmt: skip
    assert len(fig.axes) == 3 * 4 and not titles_overlap(fig)
    fig = fig_failures(eps)
    assert len(fig.axes) == 3 * 5 and not titles_overlap(fig)
    # the prediction is the complement of the truth: foreground IoU 0
    assert fig.axes[4].get_title() == "prediction, IoU 0.00"
    assert fig.axes[3].get_title() == "SAAM attention"
    with pytest.raises(ValueError, match="no SAAM attention map"):
        fig_failures([replace(eps[0], attention=None)])


def test_fig_10_draws_the_raw_attention_logit_scaled_per_map_warm_where_highest():
    """SAAM's query attention is one raw logit (no sigmoid, D10): any range, here all negative.
    Fig. 10 draws it min-max scaled, the highest logit at the warm end, the lowest at the cold
    end; clamping it to [0,1] would paint the whole map one colour."""
    ep = episode(0)
    logit = -6.0 + 4.0 * torch.rand(65, 65, generator=torch.Generator().manual_seed(1))
    logit[10, 20], logit[40, 50] = -1.0, -9.0
    for fig, col in ((fig_attention([replace(ep, attention=logit)], n=1), 1),
                     (fig_failures([replace(ep, attention=logit)]), 3)):  # fmt: skip
        assert fig.axes[col].get_title() == "SAAM attention"
        drawn = np.asarray(fig.axes[col].images[0].get_array())
        q = denormalize(ep.query)
        np.testing.assert_array_equal(drawn[10, 20], heatmap(q, torch.ones(65, 65))[10, 20])
        np.testing.assert_array_equal(drawn[40, 50], heatmap(q, torch.zeros(65, 65))[40, 50])
        assert len(np.unique(drawn.reshape(-1, 3), axis=0)) > 100
